#include "textflag.h"

// func vforkSyscall(trap, a1, a2 uintptr) (r1, errno uintptr)
//
// A system call that may return twice on one stack (clone3 with
// CLONE_VM|CLONE_VFORK). A leaf without a frame: its return address stays
// in the link register, out of the child's way.
TEXT ·vforkSyscall(SB),NOSPLIT|NOFRAME,$0-40
	MOVD	a1+8(FP), R0
	MOVD	a2+16(FP), R1
	MOVD	trap+0(FP), R8
	SVC
	CMN	$4095, R0
	BCC	done
	NEG	R0, R0
	MOVD	ZR, r1+24(FP)
	MOVD	R0, errno+32(FP)
	RET
done:
	MOVD	R0, r1+24(FP)
	MOVD	ZR, errno+32(FP)
	RET
