package metrics

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestAppend(t *testing.T) {
	tests := []struct {
		name string
		in   []Metric
		want string
	}{
		{"nothing", nil, ""},
		{"counter", []Metric{{Name: "icebreaker_x_total", Help: "Xs seen.", Kind: Counter, Samples: []Sample{{Value: 42}}}},
			"# HELP icebreaker_x_total Xs seen.\n# TYPE icebreaker_x_total counter\nicebreaker_x_total 42\n"},
		{"gauge without help", []Metric{{Name: "icebreaker_now", Kind: Gauge, Samples: []Sample{{Value: -3}}}},
			"# TYPE icebreaker_now gauge\nicebreaker_now -3\n"},
		{"no samples", []Metric{{Name: "icebreaker_none", Kind: Gauge}}, "# TYPE icebreaker_none gauge\n"},
		{"labels", []Metric{{Name: "icebreaker_p_total", Kind: Counter, Samples: []Sample{
			{Labels: []Label{{"direction", "to_peer"}}, Value: 1},
			{Labels: []Label{{"direction", "to_client"}, {"b", ""}}, Value: 2},
		}}}, "# TYPE icebreaker_p_total counter\nicebreaker_p_total{direction=\"to_peer\"} 1\nicebreaker_p_total{direction=\"to_client\",b=\"\"} 2\n"},
		{"escapes", []Metric{{Name: "icebreaker_info", Help: `a \ b` + "\n" + `"c"`, Kind: Gauge, Samples: []Sample{
			{Labels: []Label{{"v", `a\b"c"` + "\nd"}}, Value: 1},
		}}}, `# HELP icebreaker_info a \\ b\n"c"` + "\n# TYPE icebreaker_info gauge\n" + `icebreaker_info{v="a\\b\"c\"\nd"} 1` + "\n"},
		{"invalid UTF-8 replaced", []Metric{{Name: "icebreaker_u", Kind: Gauge, Samples: []Sample{{Labels: []Label{{"v", "a\xffé"}}, Value: 1}}}},
			"# TYPE icebreaker_u gauge\nicebreaker_u{v=\"a\uFFFDé\"} 1\n"},
		{"values", []Metric{{Name: "icebreaker_v", Kind: Gauge, Samples: []Sample{
			{Labels: []Label{{"k", "big"}}, Value: math.MaxUint64},
			{Labels: []Label{{"k", "frac"}}, Value: 0.25},
			{Labels: []Label{{"k", "nan"}}, Value: math.NaN()},
			{Labels: []Label{{"k", "inf"}}, Value: math.Inf(1)},
			{Labels: []Label{{"k", "-inf"}}, Value: math.Inf(-1)},
		}}}, "# TYPE icebreaker_v gauge\n" +
			"icebreaker_v{k=\"big\"} 18446744073709552000\nicebreaker_v{k=\"frac\"} 0.25\nicebreaker_v{k=\"nan\"} NaN\n" +
			"icebreaker_v{k=\"inf\"} +Inf\nicebreaker_v{k=\"-inf\"} -Inf\n"},
		{"two families", []Metric{
			{Name: "icebreaker_a_total", Kind: Counter, Samples: []Sample{{Value: 1}}},
			{Name: "icebreaker_b", Kind: Gauge, Samples: []Sample{{Value: 2}}},
		}, "# TYPE icebreaker_a_total counter\nicebreaker_a_total 1\n# TYPE icebreaker_b gauge\nicebreaker_b 2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Append([]byte("prefix\n"), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix\n"+tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, "prefix\n"+tt.want)
			}
			checkGrammar(t, tt.want, tt.in)
		})
	}
}

func TestAppendErrors(t *testing.T) {
	one := []Sample{{Value: 1}}
	tests := []struct {
		name string
		in   Metric
		want string
	}{
		{"no prefix", Metric{Name: "x_total", Kind: Counter, Samples: one}, `not a metric name starting with "icebreaker_"`},
		{"empty name", Metric{Kind: Gauge}, "not a metric name"},
		{"bad character", Metric{Name: "icebreaker_a-b", Kind: Gauge}, "not a metric name"},
		{"space", Metric{Name: "icebreaker_a b", Kind: Gauge}, "not a metric name"},
		{"no kind", Metric{Name: "icebreaker_a"}, "Kind(0) is not a counter or a gauge"},
		{"counter without _total", Metric{Name: "icebreaker_a", Kind: Counter}, `must end in "_total"`},
		{"negative counter", Metric{Name: "icebreaker_a_total", Kind: Counter, Samples: []Sample{{Value: -1}}}, "cannot be negative"},
		{"bad label name", Metric{Name: "icebreaker_a", Kind: Gauge, Samples: []Sample{{Labels: []Label{{"a:b", "x"}}}}}, `"a:b" is not a label name`},
		{"label starting with a digit", Metric{Name: "icebreaker_a", Kind: Gauge, Samples: []Sample{{Labels: []Label{{"1a", "x"}}}}}, "not a label name"},
		{"reserved label", Metric{Name: "icebreaker_a", Kind: Gauge, Samples: []Sample{{Labels: []Label{{"__name__", "x"}}}}}, "not a label name"},
		{"label twice", Metric{Name: "icebreaker_a", Kind: Gauge, Samples: []Sample{{Labels: []Label{{"a", "x"}, {"a", "y"}}}}}, `label "a" given twice`},
		{"same labels twice", Metric{Name: "icebreaker_a", Kind: Gauge, Samples: []Sample{
			{Labels: []Label{{"a", "x"}}}, {Labels: []Label{{"a", "x"}}, Value: 2}}}, `two samples with the labels {"a"="x"}`},
		{"two unlabelled samples", Metric{Name: "icebreaker_a", Kind: Gauge, Samples: []Sample{{}, {}}}, "two samples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := Metric{Name: "icebreaker_good", Kind: Gauge, Samples: one}
			got, err := Append([]byte("kept"), []Metric{good, tt.in})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want ErrInvalid with %q", err, tt.want)
			}
			if string(got) != "kept" {
				t.Errorf("buffer %q after an error, want it unchanged", got)
			}
		})
	}
	t.Run("family twice", func(t *testing.T) {
		m := Metric{Name: "icebreaker_a", Kind: Gauge, Samples: []Sample{{Value: 1}}}
		if _, err := Append(nil, []Metric{m, m}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "given twice") {
			t.Errorf("error %v, want the family given twice", err)
		}
	})
}

// The format's grammar, line by line.
var (
	helpLine   = regexp.MustCompile(`^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$`)
	typeLine   = regexp.MustCompile(`^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$`)
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*`)
)

// checkGrammar parses text line by line as Prometheus does and checks the
// grammar of each line, that HELP and TYPE come at most once per family
// and before its samples, that a family's samples are together, and that
// the parsed families, labels and values are want.
func checkGrammar(t *testing.T, text string, want []Metric) {
	t.Helper()
	if text != "" && !strings.HasSuffix(text, "\n") {
		t.Errorf("output does not end with a newline: %q", text)
	}
	var got []Metric
	var cur *Metric
	family := func(name string) *Metric {
		if cur != nil && cur.Name == name {
			return cur
		}
		for _, m := range got {
			if m.Name == name {
				t.Errorf("family %s is split: %q", name, text)
			}
		}
		got = append(got, Metric{Name: name})
		cur = &got[len(got)-1]
		return cur
	}
	helps, types := map[string]bool{}, map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if text == "" {
			break
		}
		if m := helpLine.FindStringSubmatch(line); m != nil {
			if helps[m[1]] {
				t.Errorf("line %d: second HELP for %s", i+1, m[1])
			}
			helps[m[1]] = true
			f := family(m[1])
			if len(f.Samples) > 0 {
				t.Errorf("line %d: HELP after samples", i+1)
			}
			h, ok := unescape(m[2], false)
			if !ok {
				t.Errorf("line %d: bad escape in HELP %q", i+1, m[2])
			}
			f.Help = h
			continue
		}
		if m := typeLine.FindStringSubmatch(line); m != nil {
			if types[m[1]] {
				t.Errorf("line %d: second TYPE for %s", i+1, m[1])
			}
			types[m[1]] = true
			f := family(m[1])
			if len(f.Samples) > 0 {
				t.Errorf("line %d: TYPE after samples", i+1)
			}
			f.Kind = map[string]Kind{"counter": Counter, "gauge": Gauge}[m[2]]
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %d is not HELP, TYPE or a sample: %q", i+1, line)
			continue
		}
		labels, ok := parseLabels(m[2])
		if !ok {
			t.Errorf("line %d: bad labels %q", i+1, m[2])
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Errorf("line %d: value %q: %v", i+1, m[3], err)
		}
		if !types[m[1]] {
			t.Errorf("line %d: sample of %s before its TYPE", i+1, m[1])
		}
		f := family(m[1])
		f.Samples = append(f.Samples, Sample{Labels: labels, Value: v})
	}
	if len(got) != len(want) {
		t.Fatalf("parsed %d families, want %d:\n%s", len(got), len(want), text)
	}
	for i := range want {
		w := want[i]
		w.Help = strings.ToValidUTF8(w.Help, "\uFFFD")
		w.Samples = nil
		for _, s := range want[i].Samples {
			var ls []Label
			for _, l := range s.Labels {
				ls = append(ls, Label{l.Name, strings.ToValidUTF8(l.Value, "\uFFFD")})
			}
			w.Samples = append(w.Samples, Sample{Labels: ls, Value: s.Value})
		}
		if fmt.Sprint(got[i]) != fmt.Sprint(w) { // Sprint: NaN equals NaN
			t.Errorf("parsed %+v\nwant   %+v", got[i], w)
		}
	}
}

// parseLabels parses the inside of {...}: name="value" pairs separated by
// commas, values escaped.
func parseLabels(s string) ([]Label, bool) {
	var out []Label
	for s != "" {
		name := labelName.FindString(s)
		if name == "" || !strings.HasPrefix(s[len(name):], `="`) {
			return nil, false
		}
		s = s[len(name)+2:]
		end := -1
		for i := 0; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return nil, false
		}
		v, ok := unescape(s[:end], true)
		if !ok {
			return nil, false
		}
		out = append(out, Label{name, v})
		s = s[end+1:]
		if s != "" {
			if s[0] != ',' || len(s) == 1 {
				return nil, false
			}
			s = s[1:]
		}
	}
	return out, true
}

// unescape undoes the escapes of HELP text (\\ and \n) or of a label
// value (also \"); a raw newline, a raw quote in a value or another
// escape is an error.
func unescape(s string, quote bool) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n', c == '"' && quote:
			return "", false
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", false
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case '"':
			if !quote {
				return "", false
			}
			b.WriteByte('"')
		default:
			return "", false
		}
	}
	return b.String(), true
}

func TestHandler(t *testing.T) {
	calls := 0
	ms := []Metric{{Name: "icebreaker_up", Help: "Always 1.", Kind: Gauge, Samples: []Sample{{Value: 1}}}}
	h := Handler(func() []Metric { calls++; return ms })
	tests := []struct {
		method string
		status int
		body   string
	}{
		{http.MethodGet, http.StatusOK, "# HELP icebreaker_up Always 1.\n# TYPE icebreaker_up gauge\nicebreaker_up 1\n"},
		{http.MethodHead, http.StatusOK, ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "405 method not allowed: use GET\n"},
		{http.MethodPut, http.StatusMethodNotAllowed, "405 method not allowed: use GET\n"},
		{http.MethodDelete, http.StatusMethodNotAllowed, "405 method not allowed: use GET\n"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			before := calls
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tt.method, "/metrics", nil))
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Errorf("status %d, want %d", res.StatusCode, tt.status)
			}
			if tt.method == http.MethodGet && string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			if tt.status == http.StatusOK {
				if ct := res.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				if calls != before+1 {
					t.Errorf("collect called %d times, want once", calls-before)
				}
				return
			}
			if string(body) != tt.body || res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("body %q, Allow %q", body, res.Header.Get("Allow"))
			}
			if calls != before {
				t.Errorf("collect called for a refused %s", tt.method)
			}
		})
	}
}

// Over a real connection, through net/http's client: GET answers with the
// content type and the metrics; HEAD has the headers only.
func TestHandlerServer(t *testing.T) {
	ms := []Metric{{Name: "icebreaker_up", Kind: Gauge, Samples: []Sample{{Value: 1}}}}
	srv := httptest.NewServer(Handler(func() []Metric { return ms }))
	defer srv.Close()
	c := srv.Client()
	res, err := c.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ContentType || string(body) != "# TYPE icebreaker_up gauge\nicebreaker_up 1\n" {
		t.Errorf("GET: %s %q %q", res.Status, res.Header.Get("Content-Type"), body)
	}
	res, err = c.Post(srv.URL+"/metrics", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", res.Status)
	}
}

func TestHandlerInvalid(t *testing.T) {
	h := Handler(func() []Metric { return []Metric{{Name: "bad", Kind: Gauge}} })
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "not a metric name") {
		t.Errorf("status %d, body %q; want 500 with the reason", w.Code, w.Body)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Counter: "counter", Gauge: "gauge", 0: "Kind(0)", 9: "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
