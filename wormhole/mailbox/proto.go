package mailbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// maxField bounds the strings a client names things with (appid, side,
// nameplate, mailbox, phase, mood, token): far above what any client sends,
// low enough that names cannot carry bulk data past the mailbox limits.
const maxField = 256

// request is one decoded client message. The zero value of a field means
// it was absent.
type request struct {
	Type string `json:"type"`
	// ID is echoed in the ack as the client sent it (any JSON value).
	ID            json.RawMessage `json:"id"`
	AppID         string          `json:"appid"`
	Side          string          `json:"side"`
	Nameplate     *string         `json:"nameplate"`
	Mailbox       *string         `json:"mailbox"`
	Phase         *string         `json:"phase"`
	Body          *string         `json:"body"`
	Mood          string          `json:"mood"`
	Token         string          `json:"token"`
	Ping          json.RawMessage `json:"ping"`
	ClientVersion json.RawMessage `json:"client_version"`
}

// errMalformed wraps every decoding error.
var errMalformed = errors.New("malformed message")

// decodeRequest parses one client message: a JSON object with a string
// "type". Unknown keys are ignored, as the reference server does.
func decodeRequest(b []byte) (request, error) {
	var r request
	if err := json.Unmarshal(b, &r); err != nil {
		return request{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if r.Type == "" {
		return request{}, fmt.Errorf("%w: missing 'type'", errMalformed)
	}
	for _, f := range []struct {
		name string
		v    string
	}{{"type", r.Type}, {"appid", r.AppID}, {"side", r.Side}, {"mood", r.Mood}, {"token", r.Token},
		{"nameplate", deref(r.Nameplate)}, {"mailbox", deref(r.Mailbox)}, {"phase", deref(r.Phase)}} {
		if len(f.v) > maxField {
			return request{}, fmt.Errorf("%w: '%s' is %d bytes long, at most %d", errMalformed, f.name, len(f.v), maxField)
		}
	}
	if len(r.ID) > maxField || len(r.Ping) > maxField || len(r.ClientVersion) > maxField {
		return request{}, fmt.Errorf("%w: 'id', 'ping' or 'client_version' is longer than %d bytes", errMalformed, maxField)
	}
	return r, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// serverTime is a time as the reference server writes it: float seconds
// since the Unix epoch.
func serverTime(t time.Time) json.RawMessage {
	return strconv.AppendFloat(nil, float64(t.UnixMicro())/1e6, 'f', 6, 64)
}

// encode marshals a server message: the fields of v (a struct or map) with
// "type" and "server_tx" added. v must marshal to a JSON object.
func encode(typ string, v any, now time.Time) []byte {
	var fields []byte
	if v != nil {
		var err error
		if fields, err = json.Marshal(v); err != nil || len(fields) < 2 || fields[0] != '{' {
			// Only our own types reach here; a failure is a bug.
			panic(fmt.Sprintf("mailbox: cannot encode %q: %v", typ, err))
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"type":`)
	t, _ := json.Marshal(typ)
	b.Write(t)
	b.WriteString(`,"server_tx":`)
	b.Write(serverTime(now))
	if len(fields) > 2 {
		b.WriteByte(',')
		b.Write(fields[1:])
	} else {
		b.WriteByte('}')
	}
	return b.Bytes()
}

// Server messages that carry fields.
type (
	ackMsg struct {
		ID json.RawMessage `json:"id"`
	}
	errorMsg struct {
		Error string          `json:"error"`
		Orig  json.RawMessage `json:"orig"` // the request as sent; null when it was not JSON
	}
	welcomeMsg struct {
		Welcome welcome `json:"welcome"`
	}
	welcome struct {
		MOTD  string `json:"motd,omitempty"`
		Error string `json:"error,omitempty"`
	}
	pongMsg struct {
		Pong json.RawMessage `json:"pong"`
	}
	nameplatesMsg struct {
		Nameplates []nameplateID `json:"nameplates"`
	}
	nameplateID struct {
		ID string `json:"id"`
	}
	allocatedMsg struct {
		Nameplate string `json:"nameplate"`
	}
	claimedMsg struct {
		Mailbox string `json:"mailbox"`
	}
	messageMsg struct {
		Side     string          `json:"side"`
		Phase    string          `json:"phase"`
		Body     string          `json:"body"`
		ServerRx json.RawMessage `json:"server_rx"`
		ID       json.RawMessage `json:"id"`
	}
)

// orig returns what an error message quotes: the request if it is JSON,
// else null.
func orig(raw []byte) json.RawMessage {
	if len(raw) > 0 && json.Valid(raw) {
		return raw
	}
	return json.RawMessage("null")
}
