# dirty: a guest that never stops writing.  Like fill, but passes over every
# 4 KiB page in [2 MiB, RAM - 8 MiB) forever, each pass with a new non-zero
# word, so live migration without a high enough bandwidth never converges.
        .include "common.inc"

        .globl  _start
_start:
        cli
        movl    $STACK, %esp
        call    ram_top                 # EDX = end (exclusive)
        movl    %edx, %ecx
        movl    $msg, %esi
        call    puts
        movl    $1, %ebx                # pass number, never zero
pass:
        movl    $LOW, %edi
dirty_page:
        cmpl    %ecx, %edi
        jae     next_pass
        leal    (%edi,%ebx), %eax
        orl     $1, %eax
        movl    %eax, (%edi)
        addl    $PAGE, %edi
        jmp     dirty_page
next_pass:
        incl    %ebx
        jnz     pass
        movl    $1, %ebx
        jmp     pass

msg:    .asciz  "virtfleet-guest: dirtying\n"
