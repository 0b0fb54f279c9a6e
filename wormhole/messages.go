package wormhole

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrBadServerMessage: a frame from the mailbox server that is not a
// well-formed server message.
var ErrBadServerMessage = errors.New("wormhole: malformed server message")

// ICEServer is one entry of the ICE servers that an icebreaker mailbox
// server hands out (the shape of WebRTC's RTCIceServer). A plain value.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ServerMessage is one message from a mailbox server (magic-wormhole
// server-protocol.md). Fields are set according to Type; Body holds the
// decoded hex of a "message". It is a plain value: ParseServerMessage returns
// a new one that the caller owns.
type ServerMessage struct {
	Type      string          `json:"type"`
	ID        string          `json:"id,omitempty"`
	Welcome   *Welcome        `json:"welcome,omitempty"`
	Nameplate string          `json:"nameplate,omitempty"`
	Mailbox   string          `json:"mailbox,omitempty"`
	Side      string          `json:"side,omitempty"`
	Phase     string          `json:"phase,omitempty"`
	BodyHex   string          `json:"body,omitempty"`
	Error     string          `json:"error,omitempty"`
	Orig      json.RawMessage `json:"orig,omitempty"`
	// icebreaker-ice-servers answer.
	ICEServers []ICEServer `json:"ice_servers,omitempty"`
	TTL        int         `json:"ttl,omitempty"`

	Body []byte `json:"-"`
}

// Welcome is the server's first message.
type Welcome struct {
	// MOTD is a message of the day to show the user.
	MOTD string `json:"motd,omitempty"`
	// Error, when set, means the server refuses this client; the text
	// says why.
	Error string `json:"error,omitempty"`
}

// origCommand is the part of an error's "orig" that identifies the command.
type origCommand struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// ParseServerMessage decodes one text frame from the server and checks the
// fields its type requires. Unknown types are returned as they are (a
// client ignores them); errors wrap ErrBadServerMessage.
func ParseServerMessage(b []byte) (*ServerMessage, error) {
	var m ServerMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadServerMessage, err)
	}
	bad := func(what string) (*ServerMessage, error) {
		return nil, fmt.Errorf("%w: %q %s", ErrBadServerMessage, m.Type, what)
	}
	switch m.Type {
	case "":
		return bad("has no type")
	case "welcome":
		if m.Welcome == nil {
			return bad("without a welcome object")
		}
	case "allocated":
		if m.Nameplate == "" {
			return bad("without a nameplate")
		}
	case "claimed":
		if m.Mailbox == "" {
			return bad("without a mailbox")
		}
	case "message":
		if m.Side == "" || m.Phase == "" {
			return bad("without side or phase")
		}
		body, err := hex.DecodeString(m.BodyHex)
		if err != nil {
			return bad("body is not hex")
		}
		m.Body = body
	case "error":
		if m.Error == "" {
			return bad("without error text")
		}
	case "icebreaker-ice-servers":
		for _, s := range m.ICEServers {
			if len(s.URLs) == 0 {
				return bad("has an ICE server without urls")
			}
		}
	}
	return &m, nil
}

// origOf returns the type and id of the command an error message answers,
// empty if it does not say.
func (m *ServerMessage) origOf() origCommand {
	var o origCommand
	if len(m.Orig) > 0 {
		_ = json.Unmarshal(m.Orig, &o) // an unreadable orig identifies nothing
	}
	return o
}

// ServerError is an error message from the mailbox server (in the welcome,
// or in answer to a command).
type ServerError struct {
	// Command is the type of the command the server refused ("" for the
	// welcome).
	Command string
	// Text is the server's explanation.
	Text string
}

func (e *ServerError) Error() string {
	if e.Command == "" {
		return "wormhole: the mailbox server refuses this client: " + e.Text
	}
	return fmt.Sprintf("wormhole: the mailbox server refused %q: %s", e.Command, e.Text)
}

// pakeMessage is the plaintext of the "pake" phase.
type pakeMessage struct {
	PakeV1 string `json:"pake_v1"`
}

// versionMessage is the plaintext of the "version" phase.
type versionMessage struct {
	AppVersions json.RawMessage `json:"app_versions"`
}
