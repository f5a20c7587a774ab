package ociimage

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
)

// machines maps GOARCH to the ELF machine of its binaries.
var machines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM,
	"386": elf.EM_386, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
}

// CheckStaticELF fails unless r is a Linux ELF executable for goarch that
// runs on an empty filesystem: no program interpreter (PT_INTERP, the
// dynamic loader an image FROM scratch lacks) and no dynamic section
// (shared libraries).
func CheckStaticELF(r io.ReaderAt, goarch string) error {
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %s, not an executable", f.Type)
	}
	if want, ok := machines[goarch]; !ok || f.Machine != want {
		return fmt.Errorf("ELF machine %s, not %s's", f.Machine, goarch)
	}
	var errs []error
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			errs = append(errs, errors.New("has a program interpreter (PT_INTERP): dynamically linked"))
		case elf.PT_DYNAMIC:
			errs = append(errs, errors.New("has a dynamic section (PT_DYNAMIC): needs shared libraries"))
		}
	}
	return errors.Join(errs...)
}
