package turnauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// A stateless nonce is
//
//	[nonce cookie + features]  base64url( expiry(8) | salt(4) | mac(12) )
//
// where expiry is the Unix time in seconds after which the nonce is stale,
// salt is random (so that two clients behind one IP address never get the
// same nonce, RFC 8489, Section 9.2.4), and mac is HMAC-SHA256 under the
// nonce secret of a label, the feature bits, the realm, expiry, salt and the
// client's IP address, cut to 12 bytes. The cookie is present when the
// feature set is not empty. Nothing is stored: any Authenticator with the
// same secret and realm verifies the nonce.
const (
	nonceBodySize = 8 + 4 + 12
	nonceMACSize  = 12
	nonceLabel    = "icebreaker turn nonce v1"
	// cookieLen is the nonce cookie plus its 4 base64 characters of
	// feature bits.
	cookieLen = len(stun.NonceCookie) + 4
)

var nonceEncoding = base64.RawURLEncoding

// nonceState is the verdict on a received nonce.
type nonceState uint8

const (
	nonceValid   nonceState = iota
	nonceExpired            // ours, but past its expiry
	nonceForged             // not ours: bad format, MAC, or client address
)

func (a *Authenticator) nonceMAC(dst []byte, features uint32, expiry uint64, salt []byte, ip netip.Addr) []byte {
	h := hmac.New(sha256.New, a.nonceSecret)
	var buf [64]byte
	b := append(buf[:0], nonceLabel...)
	b = append(b, byte(features>>16), byte(features>>8), byte(features))
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.realm)))
	h.Write(b)
	h.Write([]byte(a.realm))
	b = binary.BigEndian.AppendUint64(buf[:0], expiry)
	b = append(b, salt...)
	ip16 := ip.Unmap().As16()
	if !ip.IsValid() {
		ip16 = [16]byte{}
	}
	b = append(b, ip16[:]...)
	h.Write(b)
	var sum [sha256.Size]byte
	return append(dst, h.Sum(sum[:0])[:nonceMACSize]...)
}

// appendNonce appends a fresh nonce for a client at ip, valid until now+TTL.
func (a *Authenticator) appendNonce(b []byte, ip netip.Addr, now time.Time) []byte {
	if a.features != 0 {
		b = stun.AppendNonceCookie(b, a.features)
	}
	var body [nonceBodySize]byte
	expiry := uint64(now.Add(a.nonceTTL).Unix())
	binary.BigEndian.PutUint64(body[:8], expiry)
	_, _ = rand.Read(body[8:12]) // crypto/rand.Read never fails on Linux.
	a.nonceMAC(body[12:12], a.features, expiry, body[8:12], ip)
	return nonceEncoding.AppendEncode(b, body[:])
}

// checkNonce verifies a nonce received from ip.
func (a *Authenticator) checkNonce(nonce string, ip netip.Addr, now time.Time) nonceState {
	var features uint32
	if strings.HasPrefix(nonce, stun.NonceCookie) {
		f, ok := stun.NonceFeatures(nonce)
		if !ok {
			return nonceForged
		}
		features, nonce = f, nonce[cookieLen:]
	}
	if nonceEncoding.DecodedLen(len(nonce)) != nonceBodySize {
		return nonceForged
	}
	var body [nonceBodySize]byte
	if n, err := nonceEncoding.Decode(body[:], []byte(nonce)); err != nil || n != nonceBodySize {
		return nonceForged
	}
	expiry := binary.BigEndian.Uint64(body[:8])
	var mac [nonceMACSize]byte
	if !hmac.Equal(a.nonceMAC(mac[:0], features, expiry, body[8:12], ip), body[12:]) {
		return nonceForged
	}
	if expiry > uint64(1<<62) || now.Unix() >= int64(expiry) {
		return nonceExpired
	}
	return nonceValid
}
