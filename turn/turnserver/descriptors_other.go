//go:build !unix

package turnserver

// DescriptorBudget returns 0 (no budget): the open-file limit is not known
// here.
func DescriptorBudget(reserve int) int { return 0 }
