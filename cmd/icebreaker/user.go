package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/userstore"
	"golang.org/x/term"
)

// defaultUserRealm is the realm `icebreaker user` files users under when
// --realm is not given. A user's keys include the realm, so it must be the
// realm the server runs with (turn.realm in its configuration).
const defaultUserRealm = "icebreaker"

// userStdin is where --password-stdin reads from; tests replace it.
var userStdin io.Reader = os.Stdin

// userCommands are the subcommands of `icebreaker user`.
var userCommands = []struct {
	name, args, summary string
	password            bool // takes a password
}{
	{"add", "USERNAME", "add a user", true},
	{"del", "USERNAME", "delete a user", false},
	{"import", "", "import coturn's users (turnusers_lt) with their MD5 keys", false},
	{"list", "", "list users (every realm unless --realm is given)", false},
	{"passwd", "USERNAME", "change a user's password", true},
}

func userUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: icebreaker user COMMAND [flags] [USERNAME]")
	fmt.Fprintln(w, "\nManages the TURN users of the user store, an SQLite file or a PostgreSQL database")
	fmt.Fprintln(w, "(--db postgres://...) that keeps each user's long-term keys (MD5, SHA-256) and")
	fmt.Fprintln(w, "USERHASH, never the password. Running servers that use the same store see the")
	fmt.Fprintln(w, "changes without a restart.")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range userCommands {
		fmt.Fprintf(w, "  %-7s %-9s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'icebreaker user COMMAND -h' for its flags. Example:")
	io.WriteString(w, "  printf '%s\\n' \"$PASSWORD\" | icebreaker user add --realm example.org --password-stdin alice\n")
}

// runUser dispatches `icebreaker user add|del|list|passwd`.
func runUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: missing user command (add, del, list or passwd)", errUsage)
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		userUsage(stdout)
		return nil
	case "delete", "rm":
		name = "del"
	}
	if name == "import" {
		return runUserImport(ctx, args[1:], stdout, stderr)
	}
	for _, c := range userCommands {
		if c.name == name {
			return runUserCommand(ctx, name, c.args, c.password, args[1:], stdout, stderr)
		}
	}
	return fmt.Errorf("%w: unknown user command %q (want add, del, list or passwd)", errUsage, args[0])
}

func runUserCommand(ctx context.Context, name, argsDoc string, takesPassword bool, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("user "+name, stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: icebreaker user %s [flags] %s\n\nflags:\n", name, argsDoc)
		fs.PrintDefaults()
	}
	realmDefault, realmDoc := defaultUserRealm, "the server's TURN realm: part of every key"
	if name == "list" {
		realmDefault, realmDoc = "", "list only this realm's users"
	}
	var (
		dbPath   = fs.String("db", "", userDBDoc)
		realm    = fs.String("realm", realmDefault, "`REALM`: "+realmDoc)
		password *string
		pwStdin  *bool
	)
	if takesPassword {
		password = fs.String("password", "", "the password (visible to other local users in the process list: prefer --password-stdin)")
		pwStdin = fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var username string
	switch {
	case argsDoc == "" && len(pos) > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
	case argsDoc != "" && len(pos) != 1:
		return fmt.Errorf("%w: want one USERNAME, got %d arguments", errUsage, len(pos))
	case argsDoc != "":
		username = pos[0]
		if err := userstore.CheckUsername(username); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if name == "add" && strings.ContainsAny(username, " \t:") {
			// A colon would read as a TURN REST username (EXPIRY:USER).
			return fmt.Errorf("%w: username %q has a space or a colon; TURN REST credentials use the colon", errUsage, username)
		}
	}
	if name != "list" && *realm == "" {
		return fmt.Errorf("%w: --realm is empty", errUsage)
	}
	var pw string
	if takesPassword {
		if pw, err = readPassword(*password, *pwStdin); err != nil {
			return err
		}
	}

	s, err := openUserDB(ctx, *dbPath, name == "add")
	if err != nil {
		return err
	}
	defer s.Close()
	path := s.Path()

	switch name {
	case "add":
		err = s.Add(ctx, *realm, username, pw)
		if errors.Is(err, userstore.ErrUserExists) {
			return fmt.Errorf("user %q already exists in realm %q (change its password with 'icebreaker user passwd')", username, *realm)
		}
		if err == nil {
			fmt.Fprintf(stdout, "added user %q to realm %q in %s\n", username, *realm, path)
		}
	case "passwd":
		err = noUser(s.SetPassword(ctx, *realm, username, pw), username, *realm)
		if err == nil {
			fmt.Fprintf(stdout, "changed the password of %q in realm %q\n", username, *realm)
		}
	case "del":
		err = noUser(s.Delete(ctx, *realm, username), username, *realm)
		if err == nil {
			fmt.Fprintf(stdout, "deleted user %q from realm %q\n", username, *realm)
		}
	case "list":
		err = listUsers(ctx, s, *realm, stdout, stderr)
	}
	if err != nil {
		return err
	}
	return s.Close()
}

const userDBDoc = "user store: SQLite `FILE` or postgres:// URL (default $ICEBREAKER_DATA_DIR/users.db, /var/lib/icebreaker/users.db for root, else ~/.local/share/icebreaker/users.db)"

// openUserDB opens the store named by --db: a postgres:// URL, or an
// SQLite file (the default path when db is ""), which only a command that
// may create it (create) opens when it does not exist yet.
func openUserDB(ctx context.Context, db string, create bool) (userstore.Admin, error) {
	if userstore.IsPostgres(db) {
		return userstore.OpenAdmin(ctx, db)
	}
	if db == "" {
		var err error
		if db, err = userstore.DefaultPath(); err != nil {
			return nil, err
		}
	}
	if !create {
		// On a missing file the command would only create an empty
		// database and then fail.
		if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no user database at %s (add a user first, or give --db)", db)
		}
	}
	return userstore.OpenAdmin(ctx, db)
}

// runUserImport is `icebreaker user import --from-coturn DB`: it copies
// coturn's long-term users (realm, name, MD5 key) into the store. coturn
// keeps only the MD5 key, so an imported user authenticates with MD5 (as
// coturn's clients do) and gets its SHA-256 key at its next password
// change.
func runUserImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("user import", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker user import --from-coturn FILE|URL [--db FILE|URL]")
		fmt.Fprintln(stderr, "\nImports coturn's users (its turnusers_lt table) with their keys, so that nobody's")
		fmt.Fprintln(stderr, "password changes. coturn keeps only the MD5 key: imported users authenticate with")
		fmt.Fprintln(stderr, "MD5 until 'icebreaker user passwd' gives them a SHA-256 key too. Existing users of")
		fmt.Fprintln(stderr, "the same realm and name are replaced.\n\nflags:")
		fs.PrintDefaults()
	}
	dbPath := fs.String("db", "", userDBDoc)
	from := fs.String("from-coturn", "", "coturn's user database: its SQLite `FILE` (userdb) or a postgres:// URL (psql-userdb)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
	}
	if *from == "" {
		fs.Usage()
		return fmt.Errorf("%w: --from-coturn is required", errUsage)
	}
	users, skipped, err := userstore.ReadCoturn(ctx, *from)
	if err != nil {
		return err
	}
	for _, sk := range skipped {
		fmt.Fprintf(stderr, "skipped %q in realm %q: %s\n", sk.Username, sk.Realm, sk.Reason)
	}
	if len(users) == 0 {
		return fmt.Errorf("no importable users in %s", *from)
	}
	s, err := openUserDB(ctx, *dbPath, true)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, u := range users {
		if err := s.ImportMD5(ctx, u.Realm, u.Username, u.KeyMD5); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "imported %d user(s) into %s (MD5 keys only: SHA-256 after a password change)\n", len(users), s.Path())
	return s.Close()
}

func noUser(err error, username, realm string) error {
	if errors.Is(err, userstore.ErrNoUser) {
		return fmt.Errorf("no user %q in realm %q", username, realm)
	}
	return err
}

// readPassword returns the password from --password or, with
// --password-stdin, the first line of standard input without its line
// ending. It never prints it.
func readPassword(flagValue string, fromStdin bool) (string, error) {
	switch {
	case flagValue != "" && fromStdin:
		return "", fmt.Errorf("%w: --password and --password-stdin exclude each other", errUsage)
	case flagValue != "":
		return flagValue, nil
	case !fromStdin:
		if f, ok := userStdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return promptPassword(f)
		}
		return "", fmt.Errorf("%w: give the password with --password-stdin (or --password), or run on a terminal to be asked", errUsage)
	}
	line, err := bufio.NewReader(userStdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("empty password on standard input")
	}
	return line, nil
}

// promptPassword asks for the password twice on the terminal f, without
// echo, and returns it if both match.
func promptPassword(f *os.File) (string, error) {
	read := func(prompt string) (string, error) {
		fmt.Fprint(f, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(f)
		return string(b), err
	}
	pw, err := read("Password: ")
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	again, err := read("Password again: ")
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if again != pw {
		return "", errors.New("the passwords differ")
	}
	return pw, nil
}

func listUsers(ctx context.Context, s userstore.Admin, realm string, stdout, stderr io.Writer) error {
	users, err := s.List(ctx, realm)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		if realm != "" {
			fmt.Fprintf(stderr, "no users in realm %q in %s\n", realm, s.Path())
		} else {
			fmt.Fprintf(stderr, "no users in %s\n", s.Path())
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REALM\tUSERNAME\tCREATED\tUPDATED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Realm, u.Username,
			u.Created.UTC().Format(time.RFC3339), u.Updated.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
