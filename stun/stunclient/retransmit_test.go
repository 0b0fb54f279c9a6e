package stunclient

import (
	"testing"
	"time"
)

func TestRetransmitDefaults(t *testing.T) {
	var r Retransmit
	// RFC 8489, Section 6.2.1: sent at 0, 500, 1500, 3500, 7500, 15500
	// and 31500 ms; failure at 39500 ms.
	want := []time.Duration{500, 1000, 2000, 4000, 8000, 16000, 8000}
	var at time.Duration
	for i, w := range want {
		got, last := r.Wait(i)
		if got != w*time.Millisecond {
			t.Fatalf("Wait(%d) = %v, want %v", i, got, w*time.Millisecond)
		}
		if last != (i == len(want)-1) {
			t.Fatalf("Wait(%d) last = %v", i, last)
		}
		at += got
	}
	if at != 39500*time.Millisecond || r.Total() != at {
		t.Fatalf("total %v, Total() %v, want 39.5s", at, r.Total())
	}
}

func TestRetransmitCustom(t *testing.T) {
	r := Retransmit{RTO: 100 * time.Millisecond, Rc: 3, Rm: 2}
	if got := r.Total(); got != 500*time.Millisecond { // 100 + 200 + 200
		t.Fatalf("Total = %v, want 500ms", got)
	}
	r = Retransmit{RTO: time.Second, Rc: 1000, Rm: 1}
	if w, _ := r.Wait(999); w != time.Second {
		t.Fatalf("last wait = %v", w)
	}
	if w, _ := r.Wait(500); w <= 0 {
		t.Fatalf("wait overflowed: %v", w)
	}
}
