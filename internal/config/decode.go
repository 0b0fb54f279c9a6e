package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decode reads data over *c. It first walks the YAML tree against the
// struct to report unknown or repeated keys and mistyped values by their
// dotted key and line, then decodes with yaml.v3's strict decoder
// (KnownFields), which stays the final word should the walk miss anything.
// It returns the line of every key it saw.
func decode(data []byte, c *Config) (map[string]int, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty file: all defaults
		}
		return nil, &Error{Err: err}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, &Error{Err: err}
	case len(extra.Content) > 0:
		return nil, &Error{Line: extra.Line, Err: errors.New("more than one YAML document; the configuration is one document")}
	}

	w := walker{lines: map[string]int{}}
	if err := w.walk(&doc, reflect.TypeFor[Config](), ""); err != nil {
		return nil, err
	}

	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	before := *c
	if err := dec.Decode(c); err != nil {
		return nil, &Error{Err: err}
	}
	for _, key := range w.nulls {
		fieldByKey(reflect.ValueOf(c).Elem(), key).Set(fieldByKey(reflect.ValueOf(&before).Elem(), key))
	}
	normalize(reflect.ValueOf(c).Elem())
	return w.lines, nil
}

type walker struct {
	lines map[string]int // dotted key -> line
	nulls []string       // keys given an empty value
}

var durationType = reflect.TypeFor[time.Duration]()

// walk checks node n against type t at dotted key path.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return w.walk(n.Content[0], t, path)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		// An empty value keeps the default. yaml.v3 keeps it for a
		// scalar but sets a list to nil: decode restores it.
		if path != "" && !strings.Contains(path, "[") {
			w.nulls = append(w.nulls, path)
		}
		return nil
	}
	if t.Kind() == reflect.Struct && t != durationType {
		return w.walkMapping(n, t, path)
	}
	if t.Kind() == reflect.Slice {
		return w.walkSequence(n, t, path)
	}
	return checkScalar(n, t, path)
}

// walkSequence checks a list; its elements are keyed "path[i]".
func (w *walker) walkSequence(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind != yaml.SequenceNode {
		return &Error{Line: n.Line, Key: path, Err: fmt.Errorf("expected a list (such as [a, b] or one \"- item\" per line), got %s", describe(n))}
	}
	for i, e := range n.Content {
		key := listKey(path, i)
		w.lines[key] = e.Line
		if err := w.walk(e, t.Elem(), key); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) walkMapping(n *yaml.Node, t reflect.Type, path string) error {
	fields := yamlFields(t)
	if n.Kind != yaml.MappingNode {
		if path == "" {
			return &Error{Line: n.Line, Err: fmt.Errorf("expected keys (%s) at the top level, got %s",
				strings.Join(fieldNames(fields), ", "), describe(n))}
		}
		return &Error{Line: n.Line, Key: path, Err: fmt.Errorf("expected a section of keys, got %s", describe(n))}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return &Error{Line: k.Line, Key: path, Err: fmt.Errorf("keys must be plain names, got %s", describe(k))}
		}
		key := k.Value
		if path != "" {
			key = path + "." + k.Value
		}
		if first, dup := w.lines[key]; dup {
			return &Error{Line: k.Line, Key: key, Err: fmt.Errorf("given twice (first on line %d)", first)}
		}
		w.lines[key] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			return &Error{Line: k.Line, Key: key, Err: unknownKey(k.Value, path, fields)}
		}
		if err := w.walk(v, f.Type, key); err != nil {
			return err
		}
	}
	return nil
}

// checkScalar decodes n into a scratch value of type t to report a wrong
// type by key.
func checkScalar(n *yaml.Node, t reflect.Type, path string) error {
	want := typeName(t)
	if n.Kind != yaml.ScalarNode {
		return &Error{Line: n.Line, Key: path, Err: fmt.Errorf("expected %s, got %s", want, describe(n))}
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		msg := fmt.Sprintf("%q is not %s", n.Value, want)
		if t == durationType {
			msg += ` (a number with a unit, such as "30s" or "5m")`
		}
		return &Error{Line: n.Line, Key: path, Err: errors.New(msg)}
	}
	return nil
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration"
	case t.Kind() == reflect.Bool:
		return "a boolean (true or false)"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "an integer"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Slice:
		return "a list"
	}
	return "a " + t.String()
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section of keys"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

// yamlFields maps the YAML key of each field of struct type t to the field.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f
	}
	return m
}

// fieldNames lists the keys of fields in declaration order.
func fieldNames(fields map[string]reflect.StructField) []string {
	names := make([]string, len(fields))
	for name, f := range fields {
		names[f.Index[0]] = name
	}
	return names
}

// movedKeys maps the keys of the STUN-only configuration of earlier
// versions to where they went, for a helpful error.
var movedKeys = map[string]string{
	"stun.listen":           `listen, a list of "IP:PORT"`,
	"stun.port":             `listen, a list of "IP:PORT"`,
	"stun.udp":              "udp.enabled",
	"stun.tcp":              "tcp.enabled",
	"stun.udp_sockets":      "udp.sockets",
	"stun.tcp_idle_timeout": "tcp.idle_timeout",
	"stun.max_tcp_conns":    "tcp.max_conns",
	"stun.tls_port":         `tls.listen, a list of "IP:PORT"`,
	"stun.tls_cert":         "tls.cert",
	"stun.tls_key":          "tls.key",
}

func unknownKey(key, path string, fields map[string]reflect.StructField) error {
	if to, ok := movedKeys[path+"."+key]; ok {
		return fmt.Errorf("unknown key (it moved: use %s)", to)
	}
	names := fieldNames(fields)
	best, bestDist := "", 3 // suggest only close matches
	for _, name := range names {
		if d := editDistance(key, name); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" {
		if path != "" {
			best = path + "." + best
		}
		return fmt.Errorf("unknown key (did you mean %s?)", best)
	}
	where := "at the top level"
	if path != "" {
		where = "in " + path
	}
	return fmt.Errorf("unknown key; the keys %s are %s", where, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// normalize sets every empty list in v (a struct) to nil, so that "[]",
// an empty environment variable and a missing key compare equal.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normalize(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
		}
	}
}
