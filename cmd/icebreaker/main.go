// Command icebreaker is the one binary of the icebreaker NAT traversal
// stack: a STUN server (serve), a STUN client (stun), and the tools built
// on them. Each subcommand lives in its own file; this one only dispatches.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	buildversion "github.com/icebreaker-net/icebreaker/internal/version"
)

// command is one subcommand: run parses args and does the work, writing
// results to stdout and diagnostics to stderr.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the STUN and TURN server (UDP/TCP 3478, TLS 5349) and the rendezvous (TCP 4000, 4001)", runServe},
		{"stun", "ask a STUN server for this host's public address", runStun},
		{"nat", "find out what kind of NAT this host is behind (RFC 5780)", runNat},
		{"user", "manage TURN users in the embedded user store", runUser},
		{"turn", "check or load-test a TURN server", runTurn},
		{"ice", "connect two machines with ICE (offer/answer by copy and paste)", runICE},
		{"send", "send a text message or a file through a magic-wormhole code", runSend},
		{"receive", "receive a text message or a file sent with a magic-wormhole code", runReceive},
		{"pipe", "connect standard input and output with a peer's, through a code", runPipe},
		{"forward", "forward TCP connections to a peer, through a code", runForward},
		{"status", "show a running server's listeners, allocations and rates", runStatus},
		{"sessions", "list a running server's TURN allocations, or kill some", runSessions},
		{"reload", "make a running server read its configuration again (SIGHUP)", runReload},
		{"drain", "make a running server refuse new allocations and stop when they end", runDrain},
		{"version", "print the version", runVersion},
	}
}

// version is the running build's version, shared by `icebreaker version`,
// the SOFTWARE attribute and icebreaker_build_info. `make build` stamps it
// from git describe into internal/version.Stamp; without a stamp it comes
// from the binary's build information (see package internal/version).
var version = buildversion.String()

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintf(stdout, "icebreaker %s\n", version)
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: icebreaker COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'icebreaker COMMAND -h' for a command's flags.")
}

// errUsage marks an error in the command line: exit status 2.
var errUsage = errors.New("usage error")

func main() {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		// serve handles SIGTERM (drain) and SIGHUP (reload) itself.
		sigs = sigs[:1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	case "-version", "--version":
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		diag := stderr
		if asksHelp(args[1:]) {
			diag = stdout // the help asked for is output, not a diagnostic
		}
		err := c.run(ctx, args[1:], stdout, diag)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "icebreaker %s: %v; see 'icebreaker %s -h'\n", c.name, err, c.name)
			return 2
		case ctx.Err() != nil:
			// Ctrl-C or SIGTERM: say so, not "context canceled", and
			// exit like a shell does for SIGINT.
			msg := "interrupted"
			if strings.Contains(err.Error(), "interrupted") {
				msg = err.Error()
			}
			fmt.Fprintf(stderr, "icebreaker %s: %s\n", c.name, msg)
			return 130
		}
		fmt.Fprintf(stderr, "icebreaker %s: %v\n", c.name, err)
		if asksJSON(args[1:]) {
			// A --json run ends with an object that carries the error,
			// so that a reader of stdout alone sees the failure.
			b, _ := json.Marshal(map[string]string{"error": err.Error()})
			fmt.Fprintf(stdout, "%s\n", b)
		}
		return 1
	}
	fmt.Fprintf(stderr, "icebreaker: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// newFlagSet returns a FlagSet that reports errors instead of exiting, so
// run decides the exit status.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("icebreaker "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, turning a flag error into errUsage. The usage
// text is printed for -h only: a bad flag is one line, which run prints.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// asksJSON reports whether args ask for JSON output (--json, before any
// "--").
func asksJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-json", "--json", "-json=true", "--json=true":
			return true
		}
	}
	return false
}

// asksHelp reports whether args ask for help (-h, -help, --help, before
// any "--").
func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}
