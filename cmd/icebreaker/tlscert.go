package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certLoader serves the TLS certificate of `icebreaker serve` and loads it
// again when its files change on disk (certbot renews every 60 to 90
// days), without a signal: each handshake looks at the files' size and
// modification time, at most once per certCheckInterval, and a change
// loads the pair anew. A pair that fails to load is logged and the old
// certificate stays. Connections keep the certificate they started with.
// It is safe for concurrent use.
type certLoader struct {
	logger *slog.Logger

	mu        sync.Mutex // guards the fields below
	certFile  string
	keyFile   string
	stamp     [2]fileStamp
	cert      *tls.Certificate
	nextCheck time.Time
}

// certCheckInterval bounds how often a handshake stats the files.
var certCheckInterval = time.Second

type fileStamp struct {
	size int64
	mod  time.Time
}

func statStamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

// newCertLoader loads the pair, failing when it does not load.
func newCertLoader(certFile, keyFile string, logger *slog.Logger) (*certLoader, error) {
	l := &certLoader{logger: logger}
	if err := l.setFiles(certFile, keyFile); err != nil {
		return nil, err
	}
	return l, nil
}

// setFiles loads the pair from (possibly new) paths; on failure the old
// paths and certificate stay.
func (l *certLoader) setFiles(certFile, keyFile string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loadLocked(certFile, keyFile)
}

func (l *certLoader) loadLocked(certFile, keyFile string) error {
	var st [2]fileStamp
	for i, p := range []string{certFile, keyFile} {
		var err error
		if st[i], err = statStamp(p); err != nil {
			return fmt.Errorf("TLS certificate (tls.cert, tls.key): %w", err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate (tls.cert, tls.key): %w", err)
	}
	l.certFile, l.keyFile, l.stamp, l.cert = certFile, keyFile, st, &cert
	return nil
}

// getCertificate is the tls.Config.GetCertificate of the TLS listeners.
func (l *certLoader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.After(l.nextCheck) {
		l.nextCheck = now.Add(certCheckInterval)
		if l.changedLocked() {
			if err := l.loadLocked(l.certFile, l.keyFile); err != nil {
				// Log once per change of the files, not per handshake.
				for i, p := range []string{l.certFile, l.keyFile} {
					l.stamp[i], _ = statStamp(p)
				}
				l.logger.Error("TLS certificate files changed but do not load; the old certificate stays", "err", err)
			} else {
				l.logger.Info("TLS certificate reloaded", "cert", l.certFile)
			}
		}
	}
	return l.cert, nil
}

func (l *certLoader) changedLocked() bool {
	for i, p := range []string{l.certFile, l.keyFile} {
		st, err := statStamp(p)
		if err != nil || st != l.stamp[i] {
			return err == nil // a file being replaced: try at the next check
		}
	}
	return false
}
