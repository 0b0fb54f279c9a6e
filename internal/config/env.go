package config

import (
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts the name of every environment variable that sets a key.
const EnvPrefix = "ICEBREAKER_"

// otherEnv are ICEBREAKER_* variables that are not configuration keys but
// are read elsewhere, so Read does not call them unknown.
var otherEnv = map[string]bool{
	"ICEBREAKER_DATA_DIR": true, // internal/userstore: the default user store's directory
	// The client commands' secrets (turn check, turn load, ice).
	"ICEBREAKER_TURN_PASSWORD": true,
	"ICEBREAKER_TURN_SECRET":   true,
}

// EnvName returns the environment variable that sets key: EnvPrefix and the
// key in upper case with dots as underscores, so turn.rest_secrets is
// ICEBREAKER_TURN_REST_SECRETS and log.level is ICEBREAKER_LOG_LEVEL.
//
// A variable's value is read as the key's type: text as is, true/false,
// an integer, a duration ("30s"). A list is comma-separated
// ("0.0.0.0:3478,[::]:3478"; empty for none), with spaces around items
// ignored, so its items cannot contain commas. turn.users is a list of
// USERNAME:PASSWORD.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// EnvKeys returns every key the environment can set: every key that holds
// a value rather than a section, in the order of default.yaml.
func EnvKeys() []string {
	var keys []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		fields := yamlFields(t)
		for _, name := range fieldNames(fields) {
			f := fields[name]
			key := path + name
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, key+".")
				continue
			}
			keys = append(keys, key)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// applyEnv sets the keys named by the ICEBREAKER_* variables of environ
// and records them in s.env; variables that name no key go to
// s.UnknownEnv.
func (s *Sources) applyEnv(c *Config, environ []string) error {
	byName := map[string]string{}
	for _, key := range EnvKeys() {
		byName[EnvName(key)] = key
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || otherEnv[name] {
			continue
		}
		key, known := byName[name]
		if !known {
			s.UnknownEnv = append(s.UnknownEnv, unknownEnv(name, byName))
			continue
		}
		v := fieldByKey(reflect.ValueOf(c).Elem(), key)
		if err := setFromEnv(v, key, value); err != nil {
			err.Env = name
			return err
		}
		s.env[key] = name
	}
	return nil
}

// unknownEnv describes a variable that names no key, with the closest
// name that does.
func unknownEnv(name string, byName map[string]string) string {
	best, bestDist := "", 4
	for n := range byName {
		if d := editDistance(name, n); d < bestDist || (d == bestDist && n < best) {
			best, bestDist = n, d
		}
	}
	msg := name + " is not a configuration variable and is ignored"
	if best != "" {
		msg += " (did you mean " + best + "?)"
	}
	return msg
}

// fieldByKey returns the field of c (a Config) at dotted key.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	for name := range strings.SplitSeq(key, ".") {
		v = v.FieldByIndex(yamlFields(v.Type())[name].Index)
	}
	return v
}

// setFromEnv sets v, the field of key, from the text of a variable.
func setFromEnv(v reflect.Value, key, s string) *Error {
	bad := func(what string) *Error {
		return keyErr(key, "%q is not %s", s, what)
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return bad(`a duration (a number with a unit, such as "30s" or "5m")`)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return bad("a boolean (true or false)")
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return bad("an integer")
		}
		v.SetInt(int64(n))
	case v.Type() == reflect.TypeFor[[]string]():
		v.Set(reflect.ValueOf(splitList(s)))
	case v.Type() == reflect.TypeFor[[]User]():
		var users []User
		for i, item := range splitList(s) {
			name, pw, ok := strings.Cut(item, ":")
			if !ok {
				return keyErr(listKey(key, i), "%q is not USERNAME:PASSWORD", item)
			}
			users = append(users, User{Username: name, Password: pw})
		}
		v.Set(reflect.ValueOf(users))
	default:
		return keyErr(key, "cannot be set from the environment") // a new type: extend this switch
	}
	return nil
}

// splitList splits a comma-separated list, trimming spaces; "" is nil.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		out = append(out, strings.TrimSpace(item))
	}
	return out
}
