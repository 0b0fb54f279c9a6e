package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/icebreaker-net/icebreaker/wormhole/transit"
)

// ZipMode is the one directory mode magic-wormhole defines: the directory
// as a deflated zip file.
const ZipMode = "zipfile/deflated"

// ErrBadMessage: a message of the file-transfer protocol that is not JSON,
// or whose offer cannot be used (a missing or unsafe name, a negative size,
// an unknown directory mode).
var ErrBadMessage = errors.New("transfer: malformed message")

// Kind is what an offer is: a file or a directory.
type Kind int

// The kinds of offer.
const (
	File Kind = iota
	Directory
)

func (k Kind) String() string {
	if k == Directory {
		return "directory"
	}
	return "file"
}

// Offer is what a sender offers. A plain value; the zero Offer is an empty
// file with no name, which is not valid to send.
type Offer struct {
	Kind Kind
	// Name is the file's or the directory's name: one path element, never
	// a path (ParseOffer rejects "/", "\", "." and "..").
	Name string
	// Size is what goes over transit: the file's size, or the zip's.
	Size int64
	// NumBytes and NumFiles describe a directory: the size of its files
	// together, unpacked, and their number.
	NumBytes int64
	NumFiles int64
}

// fileOffer and dirOffer are the offer's JSON (file-transfer-protocol.md).
type fileOffer struct {
	Filename *string `json:"filename"`
	Filesize *int64  `json:"filesize"`
}

type dirOffer struct {
	Mode     *string `json:"mode"`
	Dirname  *string `json:"dirname"`
	Zipsize  *int64  `json:"zipsize"`
	Numbytes *int64  `json:"numbytes"`
	Numfiles *int64  `json:"numfiles"`
}

type offerJSON struct {
	Message   *string    `json:"message,omitempty"`
	File      *fileOffer `json:"file,omitempty"`
	Directory *dirOffer  `json:"directory,omitempty"`
}

// MarshalJSON encodes the offer as the body of the "offer" key:
// {"file":{"filename","filesize"}} or {"directory":{"mode","dirname",
// "zipsize","numbytes","numfiles"}}.
func (o Offer) MarshalJSON() ([]byte, error) {
	if o.Kind == Directory {
		mode := ZipMode
		return json.Marshal(offerJSON{Directory: &dirOffer{Mode: &mode, Dirname: &o.Name, Zipsize: &o.Size,
			Numbytes: &o.NumBytes, Numfiles: &o.NumFiles}})
	}
	return json.Marshal(offerJSON{File: &fileOffer{Filename: &o.Name, Filesize: &o.Size}})
}

// ParseOffer decodes the body of an "offer" key: a file or a directory
// (in ZipMode). A text offer ({"message": ...}) is ErrText.
func ParseOffer(b []byte) (Offer, error) {
	var j offerJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Offer{}, fmt.Errorf("%w: offer: %v", ErrBadMessage, err)
	}
	var o Offer
	switch {
	case j.File != nil:
		f := j.File
		if f.Filename == nil || f.Filesize == nil {
			return Offer{}, fmt.Errorf("%w: a file offer needs filename and filesize", ErrBadMessage)
		}
		o = Offer{Kind: File, Name: *f.Filename, Size: *f.Filesize}
	case j.Directory != nil:
		d := j.Directory
		if d.Mode == nil || d.Dirname == nil || d.Zipsize == nil || d.Numbytes == nil || d.Numfiles == nil {
			return Offer{}, fmt.Errorf("%w: a directory offer needs mode, dirname, zipsize, numbytes and numfiles", ErrBadMessage)
		}
		if *d.Mode != ZipMode {
			return Offer{}, fmt.Errorf("%w: unknown directory mode %q", ErrBadMessage, *d.Mode)
		}
		o = Offer{Kind: Directory, Name: *d.Dirname, Size: *d.Zipsize, NumBytes: *d.Numbytes, NumFiles: *d.Numfiles}
	case j.Message != nil:
		return Offer{}, ErrText
	default:
		return Offer{}, fmt.Errorf("%w: an offer of something unknown: %.100s", ErrBadMessage, b)
	}
	if err := o.check(); err != nil {
		return Offer{}, err
	}
	return o, nil
}

// check rejects names that are not one harmless path element and negative
// sizes.
func (o Offer) check() error {
	if o.Size < 0 || o.NumBytes < 0 || o.NumFiles < 0 {
		return fmt.Errorf("%w: negative size in the offer", ErrBadMessage)
	}
	if err := checkName(o.Name); err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	return nil
}

// checkName accepts one path element: not empty, not "." or "..", no
// slash, backslash or control character, valid UTF-8.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("name %q", name)
	case len(name) > 255 || !utf8.ValidString(name):
		return fmt.Errorf("name %.40q... is too long or not UTF-8", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("name %q is a path", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("name %q has a control character", name)
		}
	}
	return nil
}

// ErrText: the offer is a text message, which this package does not handle.
var ErrText = errors.New("transfer: the offer is a text message")

// message is one message of the file-transfer protocol through the
// wormhole; the keys present are set.
type message struct {
	Transit json.RawMessage `json:"transit"`
	Offer   json.RawMessage `json:"offer"`
	Answer  *struct {
		FileAck    *string `json:"file_ack"`
		MessageAck *string `json:"message_ack"`
	} `json:"answer"`
	Error *string `json:"error"`
}

// parseMessage decodes a message and its transit part, if any.
func parseMessage(b []byte) (message, *transit.Message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if m.Transit == nil {
		return m, nil, nil
	}
	tm, err := transit.ParseMessage(m.Transit)
	if err != nil {
		return m, nil, err
	}
	return m, tm, nil
}
