package stunuri

import "testing"

// FuzzParse checks that whatever Parse accepts validates, prints, and
// parses back to the same URI, and that printing is stable.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"stun:example.org", "stuns:example.org:5349", "turn:[::1]:3478?transport=udp",
		"turns:example.org?transport=tcp", "turn:192.0.2.1:3478?transport=tcp",
		"stun:[fe80::1%25eth0]:3478", "stun:[fe80::1%eth0]", "turn:[fe80::1%25]",
		"TURN:Host?TRANSPORT=TCP", "turn:example.org?transport=sctp", "turn://x", "turn:a:b:c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			return
		}
		if err := u.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %+v, which does not validate: %v", s, u, err)
		}
		str := u.String()
		v, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v; its String %q does not parse: %v", s, u, str, err)
		}
		if v != u {
			t.Fatalf("Parse(%q) = %+v, String %q, parsed back as %+v", s, u, str, v)
		}
		if v.String() != str {
			t.Fatalf("String not stable: %q then %q", str, v.String())
		}
	})
}
