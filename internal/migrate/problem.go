package migrate

import (
	"strconv"
	"strings"
)

// Severity says whether a Problem changes what the cluster does.
type Severity int

const (
	// Warning is a cosmetic problem: the converted objects behave as the
	// MetalLB ones did (a field dropped that had no effect, a form
	// rewritten), or the input holds something that is not MetalLB
	// configuration and was skipped.
	Warning Severity = iota
	// Error loses behaviour: a MetalLB feature Pharos lacks, an input that
	// could not be read, or an object Pharos would reject. Applying the
	// output as it is would not do what MetalLB did.
	Error
)

// String returns "warning" or "error".
func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// Problem is one thing that could not be read or converted faithfully.
// Kind, Namespace and Name are those of the input object (MetalLB's kind,
// in MetalLB's namespace), so that the user finds it in their files.
type Problem struct {
	// File is the input file; empty for objects read from a cluster.
	File string
	// Line is the first line of the object's document in File (0 when
	// unknown); a syntax error gives its own line.
	Line int
	// Kind, Namespace and Name identify the input object, when known.
	Kind      string
	Namespace string
	Name      string
	// Field is the path of the field at fault, as spec.myASN; empty when
	// the problem is the whole object.
	Field string
	// Message says what is wrong and how to fix it.
	Message string
	// Severity is Error when behaviour is lost, Warning when not.
	Severity Severity
}

// String renders the problem on one line, as
// "FILE:LINE: Kind NAMESPACE/NAME: spec.field: message", leaving out the
// parts that are unknown. The severity is not in the line: callers group
// or prefix by Severity as they print.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	}
	if p.Kind != "" {
		b.WriteString(p.Kind)
		if n := objectName(p.Namespace, p.Name); n != "" {
			b.WriteString(" " + n)
		}
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	// One line: a message quoting the input must not break the listing.
	b.WriteString(strings.Join(strings.Fields(p.Message), " "))
	return b.String()
}

func objectName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
