package transitrelay

import "testing"

// FuzzParseHandshake: never panics; what it accepts is rebuilt to the
// same line.
func FuzzParseHandshake(f *testing.F) {
	for _, s := range []string{"please relay a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90 for side 0123456789abcdef", "please relay abcd",
		"please relay  for side 01", "please relay ab for side ", "GET / HTTP/1.1", "please relay zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		tok, side, err := parseHandshake(line)
		if err != nil {
			return
		}
		if !isHex(tok) || side != "" && !isHex(side) {
			t.Fatalf("accepted %q: token %q side %q", line, tok, side)
		}
		again := "please relay " + tok
		if side != "" {
			again += " for side " + side
		}
		if again != line {
			t.Fatalf("%q parsed to %q, %q", line, tok, side)
		}
	})
}
