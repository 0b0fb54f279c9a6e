package main

import (
	"fmt"
	"testing"
)

// FuzzParseICEPortRange: any text parses to a valid range or an error,
// and a range formats back to text that parses to itself.
func FuzzParseICEPortRange(f *testing.F) {
	for _, s := range []string{"50000-50100", "1-1", "0-10", "10-5", "-", "65535-65536", "a-b", " 1-2", "1-2-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseICEPortRange(s)
		if err != nil {
			return
		}
		if r.Min == 0 || r.Min > r.Max {
			t.Fatalf("%q parsed to the bad range %+v", s, r)
		}
		back, err := parseICEPortRange(fmt.Sprintf("%d-%d", r.Min, r.Max))
		if err != nil || back != r {
			t.Fatalf("%+v formats to text that parses to %+v, %v", r, back, err)
		}
	})
}
