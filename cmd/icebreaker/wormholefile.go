package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/config"
	"github.com/icebreaker-net/icebreaker/internal/icecli"
	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/icebreaker-net/icebreaker/wormhole"
	"github.com/icebreaker-net/icebreaker/wormhole/transfer"
	"github.com/icebreaker-net/icebreaker/wormhole/transit"
)

// Files and directories with a plain magic-wormhole peer (one whose
// app_versions lacks peer.AppVersionKey): magic-wormhole's file-transfer
// protocol over its transit (package wormhole/transfer).

// transitOptions are send's and receive's flag for magic-wormhole's
// transit.
type transitOptions struct {
	helper string
}

// transitHelperEnv names the environment variable that replaces the
// default of --transit-helper.
const transitHelperEnv = "ICEBREAKER_TRANSIT_HELPER"

func (t *transitOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&t.helper, "transit-helper", os.Getenv(transitHelperEnv), "transit relay `tcp:HOST:PORT` for files with plain wormhole clients "+
		"(also $"+transitHelperEnv+"; default: port 4001 of the --rendezvous host, where 'icebreaker serve' runs it, "+
		"or magic-wormhole's public relay with the default rendezvous; \"off\" for none)")
}

// check reports bad transit flags early, as usage errors.
func (t *transitOptions) check(rendezvous string, noRelay bool) error {
	if noRelay && t.helper != "" && t.helper != "off" {
		return fmt.Errorf("%w: --no-relay and --transit-helper exclude each other", errUsage)
	}
	_, err := t.relays(rendezvous)
	return err
}

// relays returns the transit relays to use with the rendezvous URL: the
// --transit-helper, or its default.
func (t *transitOptions) relays(rendezvous string) ([]string, error) {
	switch t.helper {
	case "off":
		return nil, nil
	case "":
		if rendezvous == wormhole.DefaultRendezvousURL {
			return []string{transit.DefaultRelay}, nil
		}
		u, err := url.Parse(rendezvous)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("%w: no transit relay for --rendezvous %q: give --transit-helper", errUsage, rendezvous)
		}
		return []string{net.JoinHostPort(u.Hostname(), strconv.Itoa(config.DefaultTransitPort))}, nil
	}
	r, err := transit.ParseRelayHint(t.helper)
	if err != nil {
		return nil, fmt.Errorf("%w: --transit-helper: %v", errUsage, err)
	}
	return []string{r}, nil
}

// transferConfig maps the peer flags onto transit: --relay-only offers no
// direct hint and dials none of the peer's, --no-relay uses no relay, and
// an --ip address is where our direct listener listens (else every
// interface, announced by its addresses, loopback only when there is no
// other).
// Progress and the path go to rep.
func transferConfig(o *wormholeOptions, po *peerOptions, to *transitOptions, rep *transferReport, stdout, stderr io.Writer) (transfer.Config, error) {
	cfg := transfer.Config{Timeout: po.connect, Progress: rep.progress,
		OnConnect: func(via string) {
			rep.setPath(transitPath(via))
			o.output(stdout, map[string]any{"event": "path", "path": transitPath(via), "via": "transit " + via},
				"Connected by magic-wormhole's transit: "+via)
		}}
	if po.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if !po.noRelay {
		relays, err := to.relays(o.rendezvous)
		if err != nil {
			return cfg, err
		}
		cfg.Relays = relays
	}
	cfg.NoRelay = po.noRelay
	if po.gather.relayOnly {
		if len(cfg.Relays) == 0 {
			return cfg, fmt.Errorf("%w: --relay-only needs a transit relay (--transit-helper) with a plain wormhole peer", errUsage)
		}
		cfg.NoDirect = true
		return cfg, nil
	}
	cfg.ListenAddr = ":0"
	for _, s := range po.gather.ips {
		if p, err := icecli.ParsePrefixOrIP(s); err == nil && p.IsSingleIP() {
			cfg.ListenAddr = net.JoinHostPort(p.Addr().String(), "0")
			break
		}
	}
	return cfg, nil
}

// sendToWormhole sends file (or the directory dir, as a zip) to a plain
// magic-wormhole receiver.
func sendToWormhole(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, to *transitOptions,
	file *os.File, dir string, stdout, stderr io.Writer) error {
	var offer transfer.Offer
	var r io.Reader = file
	if dir != "" {
		zf, st, err := zipDir(dir, o, stderr)
		if err != nil {
			return err
		}
		defer os.Remove(zf.Name())
		defer zf.Close()
		size, err := zf.Seek(0, io.SeekEnd)
		if err == nil {
			_, err = zf.Seek(0, io.SeekStart)
		}
		if err != nil {
			return err
		}
		abs, _ := filepath.Abs(dir)
		offer = transfer.Offer{Kind: transfer.Directory, Name: filepath.Base(abs), Size: size,
			NumBytes: st.NumBytes, NumFiles: st.NumFiles}
		r = zf
	} else {
		fi, err := file.Stat()
		if err != nil {
			return err
		}
		offer = transfer.Offer{Kind: transfer.File, Name: filepath.Base(file.Name()), Size: fi.Size()}
	}
	rep := newTransferReport(o, stdout)
	cfg, err := transferConfig(o, po, to, rep, stdout, stderr)
	if err != nil {
		return err
	}
	if !o.json {
		fmt.Fprintf(stderr, "The receiver is a plain magic-wormhole client: sending the %s %s (%d bytes) by transit\n", offer.Kind, offer.Name, offer.Size)
	}
	rep.start(offer.Name, offer.Size)
	defer rep.finish()
	start := time.Now()
	res, err := transfer.Send(ctx, w, cfg, offer, r)
	if errors.Is(err, transfer.ErrDeclined) {
		return fmt.Errorf("the receiver declined: %w", err)
	}
	if err != nil {
		return err
	}
	reportTransit(o, stdout, "sent", offer, "", res, time.Since(start))
	return nil
}

// zipDir zips dir into a temporary file, as a wormhole peer expects a
// directory (the caller removes the file).
func zipDir(dir string, o *wormholeOptions, stderr io.Writer) (*os.File, transfer.DirStats, error) {
	zf, err := os.CreateTemp("", "icebreaker-*.zip")
	if err != nil {
		return nil, transfer.DirStats{}, err
	}
	st, err := transfer.WriteZip(zf, dir)
	if err != nil {
		zf.Close()
		os.Remove(zf.Name())
		return nil, st, err
	}
	for _, p := range st.Skipped {
		fmt.Fprintf(stderr, "warning: not sending %s: not a regular file or directory\n", p)
	}
	if !o.json {
		fmt.Fprintf(stderr, "Zipped %s: %d files, %d bytes\n", dir, st.NumFiles, st.NumBytes)
	}
	return zf, st, nil
}

// transitPath is "relay" or "direct", as for ICE paths.
func transitPath(via string) string {
	if (transfer.Result{Via: via}).Relayed() {
		return "relay"
	}
	return "direct"
}

// reportTransit prints the summary of a transfer by transit.
func reportTransit(o *wormholeOptions, stdout io.Writer, verb string, offer transfer.Offer, dest string, res transfer.Result, took time.Duration) {
	ev := map[string]any{"event": "done", "kind": offer.Kind.String(), "name": offer.Name, "bytes": offer.Size,
		"sha256": fmt.Sprintf("%x", res.SHA256), "seconds": took.Seconds(), "path": transitPath(res.Via), "via": "transit " + res.Via}
	if dest != "" {
		ev["file"] = dest
	}
	mbps := 0.0
	if took > 0 {
		mbps = float64(offer.Size) * 8 / took.Seconds() / 1e6
	}
	o.output(stdout, ev, fmt.Sprintf("%s %s %s: %d bytes in %.2f s (%.1f Mbit/s), SHA-256 %x\npath: transit %s",
		verb, offer.Kind, offer.Name, offer.Size, took.Seconds(), mbps, res.SHA256, res.Via))
}

// maxZipDirs caps the directory entries of a received zip (a wormhole
// peer's offer counts files only).
const maxZipDirs = 1 << 16

// receiveFromWormhole receives the file or directory that a plain
// magic-wormhole sender offers; pending are its messages already read
// (its transit message, its offer).
func receiveFromWormhole(ctx context.Context, w *wormhole.Wormhole, o *wormholeOptions, po *peerOptions, to *transitOptions,
	fo *fileOptions, pending [][]byte, stdout, stderr io.Writer) error {
	rep := newTransferReport(o, stdout)
	cfg, err := transferConfig(o, po, to, rep, stdout, stderr)
	if err != nil {
		return err
	}
	in, err := transfer.ReceiveOffer(ctx, w, cfg, pending...)
	if err != nil {
		return err
	}
	offer := in.Offer()
	rep.start(offer.Name, offer.Size) // no data flows before the offer is accepted
	defer rep.finish()
	var dest string
	var tmp *os.File
	var check func() error
	if offer.Kind == transfer.Directory {
		dest, err = checkDirOffer(offer, fo, stderr)
		if err == nil {
			tmp, err = os.CreateTemp(fo.dir, "."+offer.Name+".*.icebreaker-partial.zip")
		}
		check = func() error { return unpack(tmp, offer, dest, fo) }
	} else {
		fileOffer := peer.Offer{Kind: peer.KindFile, Name: offer.Name, Size: offer.Size}
		dest = filepath.Join(fo.dir, offer.Name)
		var root *os.Root
		var exists, replace bool
		if root, err = os.OpenRoot(fo.dir); err == nil {
			defer root.Close()
			exists, err = checkOffer(fileOffer, root, fo)
		}
		if err == nil {
			replace, err = askToAccept(fileOffer, fo, exists, stderr)
		}
		if err == nil {
			tmp, err = os.CreateTemp(fo.dir, "."+offer.Name+".*.icebreaker-partial")
		}
		// Installed before the ack, so that the sender hears of a
		// failure.
		check = func() error {
			if err := tmp.Close(); err != nil {
				return err
			}
			return install(root, filepath.Base(tmp.Name()), offer.Name, replace)
		}
	}
	if err != nil {
		_ = in.Decline(ctx, "transfer rejected: "+err.Error())
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once installed
	defer tmp.Close()
	start := time.Now()
	res, err := in.Accept(ctx, tmp, check)
	if err != nil {
		return err
	}
	reportTransit(o, stdout, "received", offer, dest, res, time.Since(start))
	return nil
}

// checkDirOffer checks a directory offer against the options, as
// checkOffer does a file's, and asks (or takes --accept-file). It returns
// where the directory goes.
func checkDirOffer(offer transfer.Offer, fo *fileOptions, stderr io.Writer) (string, error) {
	if err := peer.ValidName(offer.Name); err != nil {
		return "", fmt.Errorf("refusing the offered directory name: %w", err)
	}
	dest := filepath.Join(fo.dir, offer.Name)
	if _, err := os.Lstat(dest); err == nil && !fo.force {
		return "", fmt.Errorf("refusing to overwrite %s (use --force)", dest)
	}
	// The zip and the files it holds are on the disk together.
	need := uint64(offer.Size) + uint64(offer.NumBytes)
	if free, ok := freeSpace(fo.dir); ok && need > free {
		return "", fmt.Errorf("not enough space in %s: the directory needs %d bytes (zip and files), %d are free", fo.dir, need, free)
	}
	if fo.accept {
		return dest, nil
	}
	if !stdinIsTerminal() {
		return "", errors.New("the receiver did not accept the directory: standard input is not a terminal to ask on (use --accept-file)")
	}
	fmt.Fprintf(stderr, "Receive directory %s (%d files, %d bytes) into %s? [y/N] ", offer.Name, offer.NumFiles, offer.NumBytes, fo.dir)
	answer, _ := bufio.NewReader(stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return "", errors.New("the receiver declined the directory")
	}
	return dest, nil
}

// unpack extracts the received zip into a new directory beside dest and
// moves it to dest: never over an existing one unless --force.
func unpack(zf *os.File, offer transfer.Offer, dest string, fo *fileOptions) error {
	staging, err := os.MkdirTemp(fo.dir, "."+offer.Name+".*.icebreaker-partial")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging) // a no-op once installed
	lim := transfer.Limits{MaxBytes: offer.NumBytes, MaxFiles: offer.NumFiles, MaxDirs: maxZipDirs}
	if err := transfer.Extract(zf, offer.Size, staging, lim); err != nil {
		return err
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return err
	}
	if fo.force {
		if err := os.RemoveAll(dest); err != nil {
			return err
		}
	}
	if err := renameNoReplace(staging, dest); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("refusing to overwrite %s, created during the transfer (use --force)", dest)
		}
		return err
	}
	return nil
}
