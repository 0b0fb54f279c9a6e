package stun

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Error codes of RFC 8489, Section 14.8, and the TURN codes of RFC 8656,
// Section 19.
const (
	CodeTryAlternate                 = 300
	CodeBadRequest                   = 400
	CodeUnauthorized                 = 401
	CodeForbidden                    = 403
	CodeMobilityForbidden            = 405
	CodeUnknownAttribute             = 420
	CodeAllocationMismatch           = 437
	CodeStaleNonce                   = 438
	CodeAddressFamilyNotSupported    = 440
	CodeWrongCredentials             = 441
	CodeUnsupportedTransportProtocol = 442
	CodePeerAddressFamilyMismatch    = 443
	CodeConnectionAlreadyExists      = 446
	CodeConnectionTimeoutOrFailure   = 447
	CodeAllocationQuotaReached       = 486
	CodeRoleConflict                 = 487
	CodeServerError                  = 500
	CodeInsufficientCapacity         = 508
)

// ReasonPhrase returns the recommended reason phrase for a code, or "" if
// there is none.
func ReasonPhrase(code int) string {
	switch code {
	case CodeTryAlternate:
		return "Try Alternate"
	case CodeBadRequest:
		return "Bad Request"
	case CodeUnauthorized:
		return "Unauthorized"
	case CodeForbidden:
		return "Forbidden"
	case CodeMobilityForbidden:
		return "Mobility Forbidden"
	case CodeUnknownAttribute:
		return "Unknown Attribute"
	case CodeAllocationMismatch:
		return "Allocation Mismatch"
	case CodeStaleNonce:
		return "Stale Nonce"
	case CodeAddressFamilyNotSupported:
		return "Address Family not Supported"
	case CodeWrongCredentials:
		return "Wrong Credentials"
	case CodeUnsupportedTransportProtocol:
		return "Unsupported Transport Protocol"
	case CodePeerAddressFamilyMismatch:
		return "Peer Address Family Mismatch"
	case CodeConnectionAlreadyExists:
		return "Connection Already Exists"
	case CodeConnectionTimeoutOrFailure:
		return "Connection Timeout or Failure"
	case CodeAllocationQuotaReached:
		return "Allocation Quota Reached"
	case CodeRoleConflict:
		return "Role Conflict"
	case CodeServerError:
		return "Server Error"
	case CodeInsufficientCapacity:
		return "Insufficient Capacity"
	}
	return ""
}

// Limits of the reason phrase: fewer than 128 characters, which is at
// most 509 bytes when sending and 763 bytes when receiving. RFC 8489,
// Section 14.8.
const (
	maxReasonChars     = 127
	maxReasonSend      = 509
	maxReasonReceive   = 763
	errorCodeClassMask = 0x07
)

// AppendErrorCode appends an ERROR-CODE attribute. code must be in 300-699
// (other codes yield an attribute that receivers reject). An empty reason is
// replaced by ReasonPhrase(code); a longer one than RFC 8489 allows (127
// characters, 509 bytes) is cut at a character boundary. RFC 8489,
// Section 14.8.
func AppendErrorCode(b []byte, code int, reason string) []byte {
	if reason == "" {
		reason = ReasonPhrase(code)
	}
	reason = cutText(reason, maxReasonChars, maxReasonSend)
	n := 4 + len(reason)
	b = appendAttrHeader(b, AttrErrorCode, n)
	b = append(b, 0, 0, byte(code/100), byte(code%100))
	b = append(b, reason...)
	return finishAttr(b, n)
}

// cutText returns the longest prefix of s with at most maxChars characters
// and maxBytes bytes that does not split a UTF-8 sequence.
func cutText(s string, maxChars, maxBytes int) string {
	end := 0
	for chars := 0; end < len(s) && chars < maxChars; chars++ {
		_, size := utf8.DecodeRuneInString(s[end:])
		if end+size > maxBytes {
			break
		}
		end += size
	}
	return s[:end]
}

// ParseErrorCode decodes an ERROR-CODE value. The reason refers to v.
func ParseErrorCode(v []byte) (code int, reason []byte, err error) {
	if len(v) < 4 {
		return 0, nil, errLen("ERROR-CODE", len(v))
	}
	class, num := int(v[2]&errorCodeClassMask), int(v[3])
	if class < 3 || class > 6 || num > 99 {
		return 0, nil, fmt.Errorf("%w: ERROR-CODE class %d number %d", ErrMalformed, class, num)
	}
	if len(v)-4 > maxReasonReceive {
		return 0, nil, fmt.Errorf("%w: ERROR-CODE reason of %d bytes", ErrMalformed, len(v)-4)
	}
	return class*100 + num, v[4:], nil
}

// ErrorCode returns the decoded ERROR-CODE of m.
func (m *Message) ErrorCode() (int, string, error) {
	v, ok := m.Get(AttrErrorCode)
	if !ok {
		return 0, "", fmt.Errorf("%w: %s", ErrAttrNotFound, AttrErrorCode)
	}
	code, reason, err := ParseErrorCode(v)
	return code, string(reason), err
}

// Error is a STUN error response as a Go error: what a client returns when
// the server answered with an error. RFC 8489, Section 14.8.
type Error struct {
	Code   int
	Reason string
}

func (e *Error) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("stun: error response %d", e.Code)
	}
	return fmt.Sprintf("stun: error response %d %s", e.Code, e.Reason)
}

// AppendUnknownAttributes appends an UNKNOWN-ATTRIBUTES attribute.
// RFC 8489, Section 14.9.
func AppendUnknownAttributes(b []byte, types []AttrType) []byte {
	n := 2 * len(types)
	b = appendAttrHeader(b, AttrUnknownAttributes, n)
	for _, t := range types {
		b = binary.BigEndian.AppendUint16(b, uint16(t))
	}
	return finishAttr(b, n)
}

// ParseUnknownAttributes appends the types listed in an UNKNOWN-ATTRIBUTES
// value to dst.
func ParseUnknownAttributes(dst []AttrType, v []byte) ([]AttrType, error) {
	if len(v)%2 != 0 {
		return dst, errLen("UNKNOWN-ATTRIBUTES", len(v))
	}
	for i := 0; i < len(v); i += 2 {
		dst = append(dst, AttrType(binary.BigEndian.Uint16(v[i:])))
	}
	return dst, nil
}
