//! A classic-BPF interpreter for the seccomp subset the compiler emits, so programs can be
//! checked by running them instead of by comparing instruction dumps.

use libc::sock_filter;

/// The fields of `struct seccomp_data` a filter can inspect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Data {
    pub(crate) nr: u32,
    pub(crate) arch: u32,
    pub(crate) args: [u64; 6],
}

impl Data {
    /// An x86_64 syscall with all-zero arguments.
    pub(crate) fn nr(nr: u32) -> Data {
        Data {
            nr,
            arch: crate::syscalls::AUDIT_ARCH_X86_64,
            args: [0; 6],
        }
    }

    pub(crate) fn arch(mut self, arch: u32) -> Data {
        self.arch = arch;
        self
    }

    pub(crate) fn arg(mut self, index: usize, value: u64) -> Data {
        self.args[index] = value;
        self
    }

    /// The 32-bit word at `off` in the kernel's little-endian x86 layout.
    fn word(&self, off: u32) -> Result<u32, String> {
        match off {
            0 => Ok(self.nr),
            4 => Ok(self.arch),
            8 | 12 => Ok(0), // instruction_pointer
            16..=63 if off & 3 == 0 => {
                let arg = self.args[((off - 16) / 8) as usize];
                Ok(if off & 7 == 0 {
                    arg as u32
                } else {
                    (arg >> 32) as u32
                })
            }
            _ => Err(format!("load from invalid offset {off}")),
        }
    }
}

/// Runs `prog` on `data` and returns the seccomp action it ends with.
pub(crate) fn run(prog: &[sock_filter], data: &Data) -> Result<u32, String> {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let insn = prog
            .get(pc)
            .ok_or_else(|| format!("fell off the program at {pc}"))?;
        let code = u32::from(insn.code);
        let class = code & 0x07;
        pc += 1;
        match class {
            c if c == libc::BPF_LD => {
                if code != libc::BPF_LD | libc::BPF_W | libc::BPF_ABS {
                    return Err(format!("unsupported load {code:#x}"));
                }
                acc = data.word(insn.k)?;
            }
            c if c == libc::BPF_ALU => {
                if code != libc::BPF_ALU | libc::BPF_AND | libc::BPF_K {
                    return Err(format!("unsupported alu {code:#x}"));
                }
                acc &= insn.k;
            }
            c if c == libc::BPF_RET => return Ok(insn.k),
            c if c == libc::BPF_JMP => {
                let op = code & 0xf0;
                if op == libc::BPF_JA {
                    pc += insn.k as usize;
                    continue;
                }
                if code & libc::BPF_X != 0 {
                    return Err(format!("unsupported jump source {code:#x}"));
                }
                let taken = match op {
                    o if o == libc::BPF_JEQ => acc == insn.k,
                    o if o == libc::BPF_JGT => acc > insn.k,
                    o if o == libc::BPF_JGE => acc >= insn.k,
                    o if o == libc::BPF_JSET => acc & insn.k != 0,
                    _ => return Err(format!("unsupported jump {code:#x}")),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            _ => return Err(format!("unsupported instruction class {code:#x}")),
        }
    }
}
