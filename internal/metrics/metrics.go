// Package metrics writes metrics in the Prometheus text exposition format,
// version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format),
// and serves them over HTTP. It is the daemon's scrape endpoint, small on
// purpose: no registry, no client library, no state. The caller gathers
// its counters into a []Metric when a scrape comes, so nothing is counted
// or formatted per packet here.
//
// The format, line by line:
//
//	# HELP icebreaker_stun_requests_total STUN requests received.
//	# TYPE icebreaker_stun_requests_total counter
//	icebreaker_stun_requests_total 42
//	icebreaker_turn_relayed_packets_total{direction="to_peer"} 7
//
// HELP text escapes backslash and newline; label values escape backslash,
// double quote and newline. Every metric name starts with Prefix, and the
// name of a counter ends in "_total".
//
// Metric, Sample and Label are plain values (their zero values are empty,
// not valid metrics); Append and Handler keep no state and are safe for
// concurrent use.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Prefix starts the name of every metric.
const Prefix = "icebreaker_"

// ContentType is the media type of the text format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Kind is the type of a metric.
type Kind uint8

// The kinds of metrics the daemon exports.
const (
	Counter Kind = iota + 1 // only grows (until the process restarts)
	Gauge                   // a current value, may go up and down
)

func (k Kind) String() string {
	switch k {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Label is one name="value" pair of a sample.
type Label struct {
	Name, Value string
}

// Sample is one value of a metric, told apart from the metric's other
// samples by its labels.
type Sample struct {
	Labels []Label
	Value  float64
}

// Metric is a metric family: a name, its help text, its kind, and its
// samples (usually one, or one per value of a label). Append does not
// keep or change it.
type Metric struct {
	Name    string // Prefix + [a-zA-Z0-9_:]; a counter's ends in "_total"
	Help    string // one line of text; "" writes no HELP line
	Kind    Kind
	Samples []Sample
}

// ErrInvalid is wrapped by the errors of Append: a metric that the format
// cannot carry, or that breaks the naming rules of this package.
var ErrInvalid = errors.New("metrics: invalid metric")

// Append appends ms in the text format to b and returns the extended
// buffer. It checks every metric before writing any, so on error it
// returns b unchanged and an error wrapping ErrInvalid.
func Append(b []byte, ms []Metric) ([]byte, error) {
	if err := check(ms); err != nil {
		return b, err
	}
	for _, m := range ms {
		if m.Help != "" {
			b = append(b, "# HELP "...)
			b = append(b, m.Name...)
			b = append(b, ' ')
			b = appendEscaped(b, m.Help, false)
			b = append(b, '\n')
		}
		b = append(b, "# TYPE "...)
		b = append(b, m.Name...)
		b = append(b, ' ')
		b = append(b, m.Kind.String()...)
		b = append(b, '\n')
		for _, s := range m.Samples {
			b = append(b, m.Name...)
			if len(s.Labels) > 0 {
				b = append(b, '{')
				for i, l := range s.Labels {
					if i > 0 {
						b = append(b, ',')
					}
					b = append(b, l.Name...)
					b = append(b, `="`...)
					b = appendEscaped(b, l.Value, true)
					b = append(b, '"')
				}
				b = append(b, '}')
			}
			b = append(b, ' ')
			b = appendValue(b, s.Value)
			b = append(b, '\n')
		}
	}
	return b, nil
}

// check reports the first metric the format cannot carry.
func check(ms []Metric) error {
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w %q: %s", ErrInvalid, m.Name, fmt.Sprintf(format, args...))
		}
		switch {
		case !strings.HasPrefix(m.Name, Prefix) || !validName(m.Name, true):
			return bad("not a metric name starting with %q", Prefix)
		case seen[m.Name]:
			return bad("given twice")
		case m.Kind != Counter && m.Kind != Gauge:
			return bad("%v is not a counter or a gauge", m.Kind)
		case m.Kind == Counter && !strings.HasSuffix(m.Name, "_total"):
			return bad(`a counter's name must end in "_total"`)
		}
		seen[m.Name] = true
		sets := make(map[string]bool, len(m.Samples))
		for _, s := range m.Samples {
			var key strings.Builder
			for i, l := range s.Labels {
				if !validName(l.Name, false) || strings.HasPrefix(l.Name, "__") {
					return bad("%q is not a label name", l.Name)
				}
				for _, o := range s.Labels[:i] {
					if o.Name == l.Name {
						return bad("label %q given twice", l.Name)
					}
				}
				key.WriteString(strconv.Quote(l.Name) + "=" + strconv.Quote(l.Value) + ",")
			}
			if sets[key.String()] {
				return bad("two samples with the labels {%s}", strings.TrimSuffix(key.String(), ","))
			}
			sets[key.String()] = true
			if m.Kind == Counter && s.Value < 0 {
				return bad("a counter cannot be negative (%v)", s.Value)
			}
		}
	}
	return nil
}

// validName reports whether s is a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)
// or, without colon, a label name ([a-zA-Z_][a-zA-Z0-9_]*).
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		ok := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || (colon && c == ':') || (i > 0 && '0' <= c && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// appendEscaped appends s, valid UTF-8, with backslash and newline escaped,
// and double quote too when quote is set (a label value).
func appendEscaped(b []byte, s string, quote bool) []byte {
	s = strings.ToValidUTF8(s, "\uFFFD")
	for i := range len(s) {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendValue appends v as Go's ParseFloat reads it: NaN, +Inf, -Inf, or
// a decimal without exponent (counters stay whole numbers).
func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// Handler returns an http.Handler that answers GET (and HEAD) with the
// metrics collect returns, in the text format, and any other method with
// 405 Method Not Allowed. It calls collect once per request, possibly
// from several goroutines at once, so collect must be safe for concurrent
// use. Metrics that Append refuses give 500 with the reason. The handler
// does not look at the path: mount it where it belongs (/metrics).
func Handler(collect func() []Metric) http.Handler {
	return handler(collect)
}

type handler func() []Metric

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	b, err := Append(nil, h())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b) // a client gone away is not our error
}
