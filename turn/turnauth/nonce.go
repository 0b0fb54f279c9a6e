package turnauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// A stateless nonce is
//
//	[nonce cookie + features]  base64url( issued(7) | ttl(2) | salt(3) | mac(12) )
//
// where issued is when the nonce was minted, in microseconds since the Unix
// epoch, ttl is how many seconds it stays valid after that, salt is random
// (so that no two challenges give the same nonce, RFC 8489, Section 9.2.4),
// and mac is HMAC-SHA256 under the nonce secret of a label, the feature
// bits, the realm, issued, ttl, salt and the client's transport address
// (IP address, port and transport protocol), cut to 12 bytes. The cookie is
// present when the feature set is not empty. Nothing is stored: any
// Authenticator with the same secret and realm verifies the nonce, and the
// validity it was minted with travels in it. The issue time lets a server
// refuse a nonce older than an event it knows of (Result.NonceIssued).
const (
	nonceBodySize = 7 + 2 + 3 + 12
	nonceMACSize  = 12
	nonceLabel    = "icebreaker turn nonce v2"
	// cookieLen is the nonce cookie plus its 4 base64 characters of
	// feature bits.
	cookieLen = len(stun.NonceCookie) + 4
	// MaxNonceTTL is the longest Config.NonceTTL: the nonce holds its
	// validity in two bytes of seconds.
	MaxNonceTTL = 65535 * time.Second
)

var nonceEncoding = base64.RawURLEncoding

// nonceState is the verdict on a received nonce.
type nonceState uint8

const (
	nonceValid   nonceState = iota
	nonceExpired            // ours, but past its expiry
	nonceForged             // not ours: bad format, MAC, or client address
)

func (a *Authenticator) nonceMAC(dst []byte, features uint32, head []byte, from Client) []byte {
	h := hmac.New(sha256.New, a.nonceSecret)
	var buf [64]byte
	b := append(buf[:0], nonceLabel...)
	b = append(b, byte(features>>16), byte(features>>8), byte(features))
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.realm)))
	h.Write(b)
	h.Write([]byte(a.realm))
	b = append(buf[:0], head...) // issued, ttl, salt
	ip16 := from.Addr.Addr().Unmap().As16()
	if !from.Addr.Addr().IsValid() {
		ip16 = [16]byte{}
	}
	b = append(b, ip16[:]...)
	b = binary.BigEndian.AppendUint16(b, from.Addr.Port())
	b = append(b, byte(from.Transport))
	h.Write(b)
	var sum [sha256.Size]byte
	return append(dst, h.Sum(sum[:0])[:nonceMACSize]...)
}

// appendNonce appends a fresh nonce for a client at from, issued now and
// valid for the TTL.
func (a *Authenticator) appendNonce(b []byte, from Client, now time.Time) []byte {
	if a.features != 0 {
		b = stun.AppendNonceCookie(b, a.features)
	}
	var body [nonceBodySize]byte
	var issued [8]byte
	binary.BigEndian.PutUint64(issued[:], uint64(max(now.UnixMicro(), 0)))
	copy(body[0:7], issued[1:])
	binary.BigEndian.PutUint16(body[7:9], uint16(a.nonceTTL/time.Second))
	_, _ = rand.Read(body[9:12]) // crypto/rand.Read never fails on Linux.
	a.nonceMAC(body[12:12], a.features, body[:12], from)
	return nonceEncoding.AppendEncode(b, body[:])
}

// checkNonce verifies a nonce received from from and returns when it was
// issued.
func (a *Authenticator) checkNonce(nonce string, from Client, now time.Time) (nonceState, time.Time) {
	var features uint32
	if strings.HasPrefix(nonce, stun.NonceCookie) {
		f, ok := stun.NonceFeatures(nonce)
		if !ok {
			return nonceForged, time.Time{}
		}
		features, nonce = f, nonce[cookieLen:]
	}
	if nonceEncoding.DecodedLen(len(nonce)) != nonceBodySize {
		return nonceForged, time.Time{}
	}
	var body [nonceBodySize]byte
	if n, err := nonceEncoding.Decode(body[:], []byte(nonce)); err != nil || n != nonceBodySize {
		return nonceForged, time.Time{}
	}
	var mac [nonceMACSize]byte
	if !hmac.Equal(a.nonceMAC(mac[:0], features, body[:12], from), body[12:]) {
		return nonceForged, time.Time{}
	}
	var b8 [8]byte
	copy(b8[1:], body[0:7])
	issued := time.UnixMicro(int64(binary.BigEndian.Uint64(b8[:])))
	ttl := time.Duration(binary.BigEndian.Uint16(body[7:9])) * time.Second
	if !now.Before(issued.Add(ttl)) {
		return nonceExpired, issued
	}
	return nonceValid, issued
}
