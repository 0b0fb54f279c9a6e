package peer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"file.bin", true},
		{"ünïcode name.txt", true},
		{".hidden", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc/passwd", false},
		{"/etc/passwd", false},
		{"a/b", false},
		{`..\\x`, false},
		{"C:\\x", false},
		{"nul\x00byte", false},
		{"new\nline", false},
		{"bad\xffutf8", false},
		{strings.Repeat("x", 256), false},
	} {
		if err := ValidName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestFingerprint(t *testing.T) {
	id, err := newIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseFingerprint(id.fingerprint)
	if err != nil || len(b) != 32 {
		t.Fatalf("parseFingerprint(%q) = %x, %v", id.fingerprint, b, err)
	}
	for _, bad := range []string{"", "sha-1 AB", "sha-256 AB:CD", "sha-256 " + strings.Repeat("ZZ:", 31) + "ZZ",
		"sha-256 " + strings.Repeat("AB", 32), id.fingerprint + ":00"} {
		if _, err := parseFingerprint(bad); err == nil {
			t.Errorf("parseFingerprint(%q) accepted", bad)
		}
	}
}

func TestParseSignal(t *testing.T) {
	id, _ := newIdentity()
	hello, _ := json.Marshal(signal{Hello: &hello{Ufrag: "abcd", Pwd: "0123456789012345678901", Fingerprint: id.fingerprint, ALPN: ALPN}})
	if !IsHello(hello) {
		t.Errorf("IsHello(%s) = false", hello)
	}
	for _, tc := range []struct {
		msg string
		ok  bool
	}{
		{`{"ice-candidate":"candidate:1 1 UDP 1 127.0.0.1 1 typ host"}`, true},
		{`{"ice-candidates-done":true}`, true},
		{`{"ice-error":"gave up"}`, true},
		{`{"offer":{"message":"hi"}}`, false},
		{`{"ice-candidates-done":true,"ice-error":"x"}`, false},
		{`{"ice-hello":{"ufrag":"a","pwd":"b","fingerprint":"sha-256 AB"}}`, false},
		{`{"ice-hello":{}}`, false},
		{`[1,2]`, false},
		{`not json`, false},
	} {
		_, err := parseSignal([]byte(tc.msg))
		if (err == nil) != tc.ok {
			t.Errorf("parseSignal(%s) = %v, want ok %v", tc.msg, err, tc.ok)
		}
		if IsHello([]byte(tc.msg)) {
			t.Errorf("IsHello(%s) = true", tc.msg)
		}
	}
}

func TestFrames(t *testing.T) {
	msgs := []*message{
		{Offer: &Offer{Kind: KindFile, Name: "a.bin", Size: 42, Mode: 0o644}},
		{Offer: &Offer{Kind: KindFile, Name: "stdin", Stream: true}},
		{Offer: &Offer{Kind: KindDir, Name: "d", Size: 42, Files: 2, Dirs: 1, Mode: 0o755}},
		{Answer: &answer{Reason: "no"}},
		{Answer: &answer{Accept: true, Resume: &resume{Offset: 7, SHA256: strings.Repeat("ab", 32)}}},
		{Start: &start{Offset: 7}},
		{Entry: &Entry{Path: "a/b", Mode: 0o600, Size: 3}},
		{Entry: &Entry{Path: "a", Dir: true, Mode: 0o700}},
		{Done: &done{SHA256: "00"}},
		{Ack: &ack{OK: true, SHA256: "00"}},
	}
	var b []byte
	for _, m := range msgs {
		b = appendFrame(b, m)
	}
	r := bytes.NewReader(b)
	for _, want := range msgs {
		got, err := readFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if !bytes.Equal(gj, wj) {
			t.Errorf("read %s, want %s", gj, wj)
		}
	}
	for _, bad := range []string{
		"\x00\x00\x00\x02{}",                        // no field
		"\x00\x00\x00\x05{\"of",                     // short
		"\x7f\x00\x00\x00",                          // too long
		"\x00\x00\x00\x1a{\"offer\":{\"size\":-1}}", // negative size, no kind
		frameOf(`{"offer":{"kind":"file","name":"x","size":5,"stream":true}}`),
		frameOf(`{"offer":{"kind":"dir","name":"x","stream":true}}`),
		frameOf(`{"offer":{"kind":"file","name":"x","files":1}}`),
		frameOf(`{"offer":{"kind":"file","name":"x","mode":2048}}`),
		frameOf(`{"answer":{"accept":false,"resume":{"offset":1,"sha256":"abababababababababababababababababababababababababababababababab"}}}`),
		frameOf(`{"answer":{"accept":true,"resume":{"offset":0,"sha256":"abababababababababababababababababababababababababababababababab"}}}`),
		frameOf(`{"answer":{"accept":true,"resume":{"offset":1,"sha256":"AB"}}}`),
		frameOf(`{"start":{"offset":-1}}`),
		frameOf(`{"entry":{"path":"../x","mode":420}}`),
		frameOf(`{"entry":{"path":"d","dir":true,"size":3}}`),
		frameOf(`{"entry":{"path":"f","size":-3}}`),
		frameOf(`{"start":{},"done":{"sha256":""}}`),
	} {
		if _, err := readFrame(strings.NewReader(bad)); err == nil {
			t.Errorf("readFrame(%q) accepted", bad)
		}
	}
}

// frameOf frames the JSON j.
func frameOf(j string) string {
	return string(binary.BigEndian.AppendUint32(nil, uint32(len(j)))) + j
}

// FuzzParseSignal: the parser of mailbox signalling never panics, and what
// it accepts marshals and parses again to the same message.
func FuzzParseSignal(f *testing.F) {
	id, _ := newIdentity()
	h, _ := json.Marshal(signal{Hello: &hello{Ufrag: "abcd", Pwd: "0123456789012345678901", Fingerprint: id.fingerprint}})
	f.Add(h)
	f.Add([]byte(`{"ice-candidate":"candidate:1 1 UDP 1 127.0.0.1 1 typ host"}`))
	f.Add([]byte(`{"ice-candidates-done":true}`))
	f.Add([]byte(`{"ice-error":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSignal(b)
		if err != nil {
			return
		}
		again, _ := json.Marshal(s)
		s2, err := parseSignal(again)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", again, err)
		}
		if a2, _ := json.Marshal(s2); !bytes.Equal(a2, again) {
			t.Fatalf("round trip %s -> %s", again, a2)
		}
	})
}

// FuzzReadFrame: the stream control frames never panic the reader, and
// what it accepts round-trips.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, &message{Offer: &Offer{Kind: KindFile, Name: "x", Size: 1}}))
	f.Add(appendFrame(nil, &message{Ack: &ack{Error: "e"}}))
	f.Add([]byte("\x00\x00\x00\x02{}"))
	f.Add(appendFrame(nil, &message{Offer: &Offer{Kind: KindDir, Name: "d", Size: 9, Files: 1, Dirs: 2, Mode: 0o755}}))
	f.Add(appendFrame(nil, &message{Offer: &Offer{Kind: KindFile, Name: "s", Stream: true}}))
	f.Add(appendFrame(nil, &message{Answer: &answer{Accept: true, Resume: &resume{Offset: 9, SHA256: strings.Repeat("0f", 32)}}}))
	f.Add(appendFrame(nil, &message{Start: &start{Offset: 9}}))
	f.Add(appendFrame(nil, &message{Entry: &Entry{Path: "a/b", Mode: 0o644, Size: 9}}))
	f.Add(appendFrame(nil, &message{Entry: &Entry{Path: "a", Dir: true, Mode: 0o755}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readFrame(bytes.NewReader(b))
		if err != nil {
			return
		}
		m2, err := readFrame(bytes.NewReader(appendFrame(nil, m)))
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		j1, _ := json.Marshal(m)
		j2, _ := json.Marshal(m2)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("round trip %s -> %s", j1, j2)
		}
	})
}

// TestHandshakeChecksFingerprints: the QUIC handshake succeeds only when
// each side presents the certificate whose fingerprint the other expects;
// a client or a server with another certificate is refused (the check a
// man in the middle without the wormhole key fails).
func TestHandshakeChecksFingerprints(t *testing.T) {
	a, _ := newIdentity()
	b, _ := newIdentity()
	mallory, _ := newIdentity()
	fp := func(id *identity) []byte { v, _ := parseFingerprint(id.fingerprint); return v }
	for _, tc := range []struct {
		name                     string
		client, server           *identity
		clientWants, serverWants []byte
		ok                       bool
	}{
		{"both right", a, b, fp(b), fp(a), true},
		{"server not the expected one", a, mallory, fp(b), fp(a), false},
		{"client not the expected one", mallory, b, fp(b), fp(a), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := handshake(t, tlsConfig(tc.client, tc.clientWants, false), tlsConfig(tc.server, tc.serverWants, true))
			t.Logf("handshake: %v", err)
			if (err == nil) != tc.ok {
				t.Fatalf("handshake: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// handshake runs a QUIC handshake over loopback UDP and a round trip on a
// stream (the server checks the client's certificate only after its own
// flight, so a refused client shows on the first stream).
func handshake(t *testing.T, client, server *tls.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	sc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	cc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	st, ct := &quic.Transport{Conn: sc}, &quic.Transport{Conn: cc}
	defer st.Close()
	defer ct.Close()
	ln, err := st.Listen(server, quicConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		s, err := c.AcceptStream(ctx)
		if err == nil {
			s.Write([]byte("pong"))
			s.Close()
		}
	}()
	c, err := ct.Dial(ctx, sc.LocalAddr(), client, quicConfig())
	if err != nil {
		return err
	}
	defer c.CloseWithError(0, "")
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	s.Write([]byte("ping"))
	s.Close()
	buf, err := io.ReadAll(s)
	if err != nil {
		return err
	}
	if string(buf) != "pong" {
		return errors.New("no pong")
	}
	return nil
}
