package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// The commands that talk to a running server's admin endpoint: status,
// sessions [kill], reload and drain.

// adminSetup parses the command line of an admin command: --admin, the
// flags that define adds, and positional arguments (at most maxArgs). It
// returns the client of the endpoint and the arguments. usage is the
// help text before the flags.
func adminSetup(name string, args []string, stderr io.Writer, usage string, maxArgs int, define func(*flag.FlagSet)) (*adminClient, []string, error) {
	fs := newFlagSet(name, stderr)
	addr := fs.String("admin", "", "admin endpoint of the server: socket `PATH` or loopback IP:PORT (admin.listen; default admin.sock beside the default user store)")
	if define != nil {
		define(fs)
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) > maxArgs {
		return nil, nil, fmt.Errorf("%w: unexpected argument %q", errUsage, pos[maxArgs])
	}
	c, err := newAdminClient(*addr)
	return c, pos, err
}

func jsonFlag(v *bool) func(*flag.FlagSet) {
	return func(fs *flag.FlagSet) { fs.BoolVar(v, "json", false, "print JSON, one object per line") }
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var jsonOut bool
	c, _, err := adminSetup("status", args, stderr, `usage: icebreaker status [--admin PATH|IP:PORT] [--json]

Shows a running server's uptime, listeners, allocations and relayed rates.

`, 0, jsonFlag(&jsonOut))
	if err != nil {
		return err
	}
	var st statusReport
	if err := c.do(ctx, "GET", "/status", &st); err != nil {
		return err
	}
	if jsonOut {
		return json.NewEncoder(stdout).Encode(st)
	}
	state := "ready"
	if st.Draining {
		state = "draining (stops in at most " + st.DrainLeft + ")"
	}
	fmt.Fprintf(stdout, "icebreaker %s, up %s, %s\n", st.Version, st.Uptime, state)
	fmt.Fprintln(stdout, "listeners:")
	for _, l := range st.Listeners {
		fmt.Fprintln(stdout, "  "+l)
	}
	if t := st.TURN; t != nil {
		fmt.Fprintf(stdout, "TURN: %d allocation(s), %d permission(s), %d channel(s)\n", t.Allocations, t.Permissions, t.Channels)
		fmt.Fprintf(stdout, "  to peers:   %s (%s/s)\n", byteCount(float64(t.ToPeerBytes)), byteCount(st.ToPeerRate))
		fmt.Fprintf(stdout, "  to clients: %s (%s/s)\n", byteCount(float64(t.ToClientBytes)), byteCount(st.ToClientRate))
		if d := t.DroppedPolicy + t.DroppedQuota + t.DroppedNoPermission; d > 0 {
			fmt.Fprintf(stdout, "  dropped: %d by policy, %d over quota, %d without permission\n", t.DroppedPolicy, t.DroppedQuota, t.DroppedNoPermission)
		}
	} else {
		fmt.Fprintln(stdout, "TURN: off")
	}
	return nil
}

// byteCount formats n bytes with a decimal unit.
func byteCount(n float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	i := 0
	for n >= 1000 && i < len(units)-1 {
		n /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

func runSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "kill" {
		return runSessionsKill(ctx, args[1:], stdout, stderr)
	}
	var jsonOut bool
	var user string
	c, _, err := adminSetup("sessions", args, stderr, `usage: icebreaker sessions [--user USER] [--admin PATH|IP:PORT] [--json]
       icebreaker sessions kill ID|--user USER [--admin PATH|IP:PORT]

Lists a running server's TURN allocations: user, client, relayed address,
age, peers and bytes each way; kill ends one (by ID) or all of a user's.

`, 0, func(fs *flag.FlagSet) {
		jsonFlag(&jsonOut)(fs)
		fs.StringVar(&user, "user", "", "only the sessions of `USER`")
	})
	if err != nil {
		return err
	}
	var ss []turnserver.Session
	if err := c.do(ctx, "GET", "/sessions?user="+url.QueryEscape(user), &ss); err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		for _, s := range ss {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	if len(ss) == 0 {
		fmt.Fprintln(stdout, "no sessions")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tCLIENT\tRELAYED\tAGE\tPEERS\tTO PEERS\tTO CLIENT")
	for _, s := range ss {
		peers := len(s.Permissions)
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.User, s.Transport, s.Client,
			strings.Join(s.Relayed, ","), s.Age.Round(time.Second), peers,
			byteCount(float64(s.ToPeerBytes)), byteCount(float64(s.ToClientBytes)))
	}
	return tw.Flush()
}

func runSessionsKill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var user string
	c, pos, err := adminSetup("sessions kill", args, stderr, `usage: icebreaker sessions kill ID|--user USER [--admin PATH|IP:PORT]

Ends allocations at once, with their usage records (reason "killed").

`, 1, func(fs *flag.FlagSet) { fs.StringVar(&user, "user", "", "kill every session of `USER`") })
	if err != nil {
		return err
	}
	q := url.Values{}
	switch {
	case len(pos) == 1 && user == "":
		q.Set("id", pos[0])
	case len(pos) == 0 && user != "":
		q.Set("user", user)
	default:
		return fmt.Errorf("%w: give one session ID or --user USER", errUsage)
	}
	var res struct{ Killed int }
	if err := c.do(ctx, "POST", "/sessions/kill?"+q.Encode(), &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "killed %d session(s)\n", res.Killed)
	return nil
}

func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, _, err := adminSetup("reload", args, stderr, `usage: icebreaker reload [--admin PATH|IP:PORT]

Makes a running server read its configuration again, as SIGHUP does. Users,
REST secrets, the relay policy, quotas, the log level and the TLS certificate
take effect; allocations and listeners stay. An invalid file is refused.

`, 0, nil)
	if err != nil {
		return err
	}
	var res struct {
		Restart []string `json:"restart_needed"`
	}
	if err := c.do(ctx, "POST", "/reload", &res); err != nil {
		return fmt.Errorf("reload refused, the server runs on with its old configuration: %w", err)
	}
	fmt.Fprintln(stdout, "configuration reloaded (the server's log says what changed)")
	if len(res.Restart) > 0 {
		fmt.Fprintf(stdout, "these keys changed but need a restart, and keep their running values: %s\n", strings.Join(res.Restart, ", "))
	}
	return nil
}

func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var timeout time.Duration
	wait := true
	c, _, err := adminSetup("drain", args, stderr, `usage: icebreaker drain [--timeout D] [--wait=false] [--admin PATH|IP:PORT]

Makes a running server refuse new allocations (300 to drain.alternate_server
when set) and stop once its allocations have ended or the timeout passed.

`, 0, func(fs *flag.FlagSet) {
		fs.DurationVar(&timeout, "timeout", 0, "stop after this long even if allocations remain (default drain.timeout, or 10m when it is 0)")
		fs.BoolVar(&wait, "wait", true, "wait until the server has stopped")
	})
	if err != nil {
		return err
	}
	path := "/drain"
	if timeout > 0 {
		path += "?timeout=" + url.QueryEscape(timeout.String())
	}
	var res struct {
		Allocations int
		Timeout     string
	}
	if err := c.do(ctx, "POST", path, &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "draining: %d allocation(s), stopping within %s\n", res.Allocations, res.Timeout)
	if !wait {
		return nil
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := res.Allocations
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		var st statusReport
		if err := c.do(ctx, "GET", "/status", &st); err != nil {
			fmt.Fprintln(stdout, "stopped")
			return nil
		}
		if st.TURN != nil && st.TURN.Allocations != last {
			last = st.TURN.Allocations
			fmt.Fprintf(stdout, "  %d allocation(s) left\n", last)
		}
	}
}
