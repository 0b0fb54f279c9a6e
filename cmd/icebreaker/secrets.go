package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Secrets never only on the command line, where every local user can read
// them (ps, /proc/PID/cmdline): each secret flag --NAME has a --NAME-file
// form, and an environment variable.

// clientEnviron looks up the environment variables of the client
// commands; tests replace it.
var clientEnviron = os.Getenv

// Environment variables of the client commands' secrets (the config
// package knows them, so that `serve` does not call them unknown).
const (
	envTURNPassword = "ICEBREAKER_TURN_PASSWORD"
	envTURNSecret   = "ICEBREAKER_TURN_SECRET"
)

// secretFlag is a secret given as --NAME VALUE, --NAME-file FILE, or in
// the environment variable env.
type secretFlag struct {
	name, env   string
	value, file string
}

// addSecretFlag defines --name and --name-file on fs.
func addSecretFlag(fs *flag.FlagSet, name, env, usage string) *secretFlag {
	s := &secretFlag{name: name, env: env}
	fs.StringVar(&s.value, name, "", usage+" (visible in the process list: prefer --"+name+"-file or $"+env+")")
	fs.StringVar(&s.file, name+"-file", "", "read --"+name+" from the first line of `FILE`")
	return s
}

// resolve returns the secret: from --name, from the file of --name-file,
// or, when neither is given and useEnv, from the environment.
func (s *secretFlag) resolve(useEnv bool) (string, error) {
	switch {
	case s.value != "" && s.file != "":
		return "", fmt.Errorf("%w: --%s and --%s-file exclude each other", errUsage, s.name, s.name)
	case s.file != "":
		v, err := readSecretFile(s.file)
		if err != nil {
			return "", fmt.Errorf("--%s-file: %w", s.name, err)
		}
		return v, nil
	case s.value != "":
		return s.value, nil
	case useEnv:
		return clientEnviron(s.env), nil
	}
	return "", nil
}

// readSecretFile returns the first line of a file, without its line
// ending; an empty one is an error.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s: the first line is empty", path)
	}
	return line, nil
}

// readListFile returns the non-empty lines of a file that do not start
// with #, without their line endings: one user or secret per line.
func readListFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}
