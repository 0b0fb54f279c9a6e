// Command printversion prints version.String(); TestLinkerStamp builds it
// with a linker stamp.
package main

import (
	"fmt"

	"github.com/icebreaker-net/icebreaker/internal/version"
)

func main() { fmt.Println(version.String()) }
