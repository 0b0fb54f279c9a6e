package wormhole

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

//go:embed pgpwords.txt
var pgpWordsFile string

// wordLists holds the PGP word list: even[b] and odd[b] for each byte b.
type wordLists struct {
	even, odd [256]string
}

// pgpWords parses pgpwords.txt once.
var pgpWords = sync.OnceValue(func() *wordLists {
	w := new(wordLists)
	n := 0
	sc := bufio.NewScanner(strings.NewReader(pgpWordsFile))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		b, err := strconv.ParseUint(f[0], 16, 8)
		if len(f) != 3 || err != nil {
			panic("wormhole: bad line in pgpwords.txt: " + line)
		}
		w.even[b], w.odd[b] = f[1], f[2]
		n++
	}
	if n != 256 {
		panic(fmt.Sprintf("wormhole: pgpwords.txt has %d entries, want 256", n))
	}
	return w
})

// ErrBadCode: a code that is not NAMEPLATE-word... (a nameplate of digits,
// then at least one word).
var ErrBadCode = errors.New("wormhole: malformed code")

// Code is a parsed wormhole code: a plain comparable value. The zero Code
// is not a valid code; make one with ParseCode or GenerateCode.
type Code struct {
	// Nameplate is the part before the first '-': decimal digits.
	Nameplate string
	// Password is the whole code, NFC-normalised: what SPAKE2 uses.
	Password string
}

// ParseCode parses a code as typed: surrounding space is trimmed, the text
// is NFC-normalised, the nameplate must be decimal digits and at least one
// non-empty word must follow it. The words are not checked against the word
// list (peers do not check them either), so a code from another client
// with other words works.
func ParseCode(s string) (Code, error) {
	s = norm.NFC.String(strings.TrimSpace(s))
	nameplate, rest, ok := strings.Cut(s, "-")
	if !ok || rest == "" {
		return Code{}, fmt.Errorf("%w: %q has no words after the nameplate (want e.g. 7-crossover-clockwork)", ErrBadCode, s)
	}
	if nameplate == "" || len(nameplate) > 10 || strings.TrimLeft(nameplate, "0123456789") != "" {
		return Code{}, fmt.Errorf("%w: nameplate %q is not a number", ErrBadCode, nameplate)
	}
	for _, w := range strings.Split(rest, "-") {
		if w == "" {
			return Code{}, fmt.Errorf("%w: %q has an empty word", ErrBadCode, s)
		}
		if strings.IndexFunc(w, unicode.IsSpace) >= 0 || strings.IndexFunc(w, unicode.IsControl) >= 0 {
			return Code{}, fmt.Errorf("%w: word %q contains space or control characters", ErrBadCode, w)
		}
	}
	return Code{Nameplate: nameplate, Password: s}, nil
}

// String returns the code as it is typed.
func (c Code) String() string { return c.Password }

// GenerateCode returns a code for nameplate with words random words from
// the PGP word list (odd list for the first, third, ... word, even list for
// the others, as magic-wormhole does), reading one byte of rand per word.
// Use crypto/rand.Reader.
func GenerateCode(nameplate string, words int, rand io.Reader) (Code, error) {
	if words < 1 {
		return Code{}, fmt.Errorf("wormhole: a code needs at least one word, not %d", words)
	}
	b := make([]byte, words)
	if _, err := io.ReadFull(rand, b); err != nil {
		return Code{}, fmt.Errorf("wormhole: reading randomness: %w", err)
	}
	wl := pgpWords()
	var sb strings.Builder
	sb.WriteString(nameplate)
	for i, c := range b {
		sb.WriteByte('-')
		if i%2 == 0 {
			sb.WriteString(wl.odd[c])
		} else {
			sb.WriteString(wl.even[c])
		}
	}
	return ParseCode(sb.String())
}
