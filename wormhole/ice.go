package wormhole

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// ICEServers asks an icebreaker mailbox server for ICE servers (STUN, and
// TURN with ephemeral credentials valid for the returned TTL), presenting
// token if the server requires one (empty for none). This is icebreaker's
// own command, not magic-wormhole's:
//
//	-> {"type":"icebreaker-ice-servers","id":ID,"token":TOKEN}
//	<- {"type":"ack","id":ID}
//	<- {"type":"icebreaker-ice-servers","ice_servers":[...],"ttl":300}
//	   or {"type":"error","error":TEXT,"orig":{...}}
//
// A plain magic-wormhole server answers "unknown type"; ICEServers then
// returns an error wrapping ErrICENotOffered, as it does when our server
// refuses the token.
func (w *Wormhole) ICEServers(ctx context.Context, token string) ([]ICEServer, time.Duration, error) {
	w.iceMu.Lock()
	defer w.iceMu.Unlock()
	var b [6]byte
	_, _ = rand.Read(b[:])
	cmd := map[string]any{"type": "icebreaker-ice-servers", "id": hex.EncodeToString(b[:])}
	if token != "" {
		cmd["token"] = token
	}
	w.mu.Lock()
	if w.fatal != nil {
		err := w.fatal
		w.mu.Unlock()
		return nil, 0, err
	}
	w.st.iceCmd, w.st.iceAnswer = cmd, nil
	w.sendLocked(cmd)
	w.mu.Unlock()

	var answer *ServerMessage
	err := w.wait(ctx, "the ICE servers", func() bool {
		answer = w.st.iceAnswer
		return answer != nil
	})
	w.mu.Lock()
	w.st.iceCmd, w.st.iceAnswer = nil, nil
	w.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	if answer.Type == "error" {
		return nil, 0, fmt.Errorf("%w: the server said %q", ErrICENotOffered, answer.Error)
	}
	if len(answer.ICEServers) == 0 {
		return nil, 0, fmt.Errorf("%w: the answer lists no ICE servers", ErrICENotOffered)
	}
	return answer.ICEServers, time.Duration(answer.TTL) * time.Second, nil
}
