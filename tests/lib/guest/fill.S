# fill: a guest whose RAM is really full.  Writes one non-zero 32-bit word
# (the page's address plus one) at the start of every 4 KiB page in
# [2 MiB, RAM - 8 MiB) once, says so on COM1, then halts forever.
        .include "common.inc"

        .globl  _start
_start:
        cli
        movl    $STACK, %esp
        call    ram_top                 # EDX = end (exclusive)
        movl    %edx, %ecx
        movl    $LOW, %edi
fill_page:
        cmpl    %ecx, %edi
        jae     filled
        leal    1(%edi), %eax
        movl    %eax, (%edi)
        addl    $PAGE, %edi
        jmp     fill_page
filled:
        movl    $msg, %esi
        call    puts
halt:
        hlt
        jmp     halt

msg:    .asciz  "virtfleet-guest: fill done\n"
