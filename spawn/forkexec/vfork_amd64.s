#include "textflag.h"

// func vforkSyscall(trap, a1, a2 uintptr) (r1, errno uintptr)
//
// A system call that may return twice on one stack: clone3 with
// CLONE_VM|CLONE_VFORK. The child runs on in the caller's frames while the
// parent sleeps inside this function, so the parent's return address must
// not stay on the stack, where the child's next call would overwrite it:
// it waits in R12 (kept across SYSCALL, and copied to the child) instead.
TEXT ·vforkSyscall(SB),NOSPLIT|NOFRAME,$0-40
	MOVQ	a1+8(FP), DI
	MOVQ	a2+16(FP), SI
	MOVQ	trap+0(FP), AX
	POPQ	R12
	SYSCALL
	PUSHQ	R12
	CMPQ	AX, $0xfffffffffffff001
	JLS	done
	NEGQ	AX
	MOVQ	$0, r1+24(FP)
	MOVQ	AX, errno+32(FP)
	RET
done:
	MOVQ	AX, r1+24(FP)
	MOVQ	$0, errno+32(FP)
	RET
