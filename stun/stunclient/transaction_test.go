package stunclient

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

var netipClient = netip.MustParseAddrPort(clientAddr)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func parse(t *testing.T, b []byte) *stun.Message {
	t.Helper()
	m := new(stun.Message)
	if err := m.Parse(b); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTransactionClock drives the sans-IO transaction with a hand-held
// clock: calls between deadlines send nothing; a late call sends once.
func TestTransactionClock(t *testing.T) {
	tx := NewTransaction(TransactionConfig{ID: stun.NewTransactionID(), Method: stun.MethodBinding,
		Retransmit: Retransmit{RTO: time.Second, Rc: 2, Rm: 3}})
	send, dl, err := tx.Next(t0)
	if !send || err != nil || dl != t0.Add(time.Second) {
		t.Fatalf("first Next: %v %v %v", send, dl, err)
	}
	if send, dl, _ := tx.Next(t0.Add(999 * time.Millisecond)); send || dl != t0.Add(time.Second) {
		t.Fatalf("early Next sent or moved the deadline: %v %v", send, dl)
	}
	// Called 200 ms late: one send, and the next wait counts from now.
	send, dl, err = tx.Next(t0.Add(1200 * time.Millisecond))
	if !send || err != nil || dl != t0.Add(4200*time.Millisecond) {
		t.Fatalf("second Next: %v %v %v", send, dl, err)
	}
	_, _, err = tx.Next(dl)
	te, ok := errors.AsType[*TimeoutError](err)
	if !ok || te.Attempts != 2 || te.Waited != 4200*time.Millisecond {
		t.Fatalf("third Next: %v", err)
	}
	if _, _, err := tx.Next(dl.Add(time.Second)); err == nil {
		t.Error("Next after the end succeeded")
	}
}

func TestTransactionReliable(t *testing.T) {
	tx := NewTransaction(TransactionConfig{ID: stun.NewTransactionID(), Method: stun.MethodBinding, Reliable: true, StreamTimeout: 5 * time.Second})
	if send, dl, _ := tx.Next(t0); !send || dl != t0.Add(5*time.Second) {
		t.Fatalf("first Next: %v %v", send, dl)
	}
	if _, _, err := tx.Next(t0.Add(5 * time.Second)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
}

func TestTransactionReceive(t *testing.T) {
	id := stun.NewTransactionID()
	other := id
	other[11] ^= 1
	key := []byte("0123456789abcdef")
	req := &stun.Message{TransactionID: id, Type: stun.BindingRequest}
	success := func() []byte { return bindingSuccess(req, netipClient) }

	withNonce := func(b []byte, features uint32) []byte {
		return stun.AppendAttr(b, stun.AttrNonce, stun.AppendNonceCookie(nil, features))
	}
	cases := []struct {
		name      string
		cfg       TransactionConfig
		msg       []byte
		done      bool
		wantErr   error // for errors.Is; nil means no error
		integrity int   // expected badIntegrity afterwards
	}{
		{name: "success", msg: success(), done: true},
		{name: "other ID", msg: bindingSuccess(&stun.Message{TransactionID: other}, netipClient), wantErr: errNotResponse},
		{name: "classic", msg: stun.AppendClassicHeader(nil, stun.BindingSuccess, 1, id), wantErr: errNotResponse},
		{name: "a request", msg: stun.AppendHeader(nil, stun.BindingRequest, id), wantErr: errNotResponse},
		{name: "an indication", msg: stun.AppendHeader(nil, stun.BindingIndication, id), wantErr: errNotResponse},
		{name: "other method", msg: stun.AppendHeader(nil, stun.Type{Method: stun.MethodRefresh, Class: stun.ClassSuccess}, id), wantErr: errNotResponse},
		{name: "good fingerprint", msg: stun.AppendFingerprint(success()), done: true},
		{name: "error response", msg: errorResponse(req, 420), done: true},
		{name: "error without ERROR-CODE", msg: stun.AppendHeader(nil, stun.BindingError, id), done: true, wantErr: stun.ErrAttrNotFound},
		{name: "unknown attribute", msg: stun.AppendAttr(success(), 0x0fff, nil), done: true, wantErr: ErrUnknownAttribute},
		{name: "unknown optional attribute", msg: stun.AppendAttr(success(), 0xcfff, nil), done: true},
		{name: "cookie promises algorithms", msg: withNonce(success(), stun.FeaturePasswordAlgorithms), wantErr: errBadNonce},
		{name: "cookie without the bit", msg: withNonce(success(), 0), done: true},
		{name: "signed", cfg: TransactionConfig{Key: key}, msg: stun.AppendMessageIntegrity(success(), key), done: true},
		{name: "signed SHA-256", cfg: TransactionConfig{Key: key}, msg: stun.AppendMessageIntegritySHA256(success(), key), done: true},
		{name: "unsigned", cfg: TransactionConfig{Key: key}, msg: success(), wantErr: stun.ErrIntegrity, integrity: 1},
		{name: "wrong key", cfg: TransactionConfig{Key: key}, msg: stun.AppendMessageIntegrity(success(), []byte("x")), wantErr: stun.ErrIntegrity, integrity: 1},
		{name: "SHA-1 where SHA-256 was sent", cfg: TransactionConfig{Key: key, Integrity: stun.AttrMessageIntegritySHA256},
			msg: stun.AppendMessageIntegrity(success(), key), wantErr: stun.ErrIntegrity, integrity: 1},
		{name: "unsigned over TCP", cfg: TransactionConfig{Key: key, Reliable: true}, msg: success(), done: true, wantErr: stun.ErrIntegrity},
		{name: "unsigned 401", cfg: TransactionConfig{Key: key}, msg: errorResponse(req, 401), done: true},
		{name: "unsigned 438", cfg: TransactionConfig{Key: key}, msg: errorResponse(req, 438), done: true},
		{name: "unsigned 400", cfg: TransactionConfig{Key: key}, msg: errorResponse(req, 400), wantErr: stun.ErrIntegrity, integrity: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.ID, cfg.Method = id, stun.MethodBinding
			tx := NewTransaction(cfg)
			if done, err := tx.Receive(parse(t, tc.msg), t0); done || err == nil {
				t.Fatalf("before start: done %v err %v", done, err)
			}
			tx.Next(t0)
			done, err := tx.Receive(parse(t, tc.msg), t0.Add(30*time.Millisecond))
			if done != tc.done {
				t.Errorf("done = %v, want %v (err %v)", done, tc.done, err)
			}
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			case tc.wantErr == nil && err != nil:
				t.Errorf("err = %v", err)
			}
			if tx.badIntegrity != tc.integrity {
				t.Errorf("integrity failures %d, want %d", tx.badIntegrity, tc.integrity)
			}
			if done && err == nil && tx.RTT() != 30*time.Millisecond {
				t.Errorf("RTT %v", tx.RTT())
			}
			if done {
				if again, _ := tx.Receive(parse(t, tc.msg), t0); again {
					t.Error("accepted a second response")
				}
			}
		})
	}
}
