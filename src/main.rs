use clap::Parser;

/// jemalloc, whose arenas give back what they no longer use (its decay purges dirty pages),
/// where glibc's allocator kept the memory each thread's arena had freed: the soak's RSS grew
/// 2 MiB a minute with a flat live heap (bench/README.md, "The soak").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = meet::cli::Cli::parse();
    meet::cmd::run(cli)
}
