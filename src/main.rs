use std::process::ExitCode;

use clap::Parser;
use rsg::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RSG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: `kubectl logs | grep` and log files see plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match rsg::crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("rsg crd: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Certs(args) => {
            match rsg::certs::generate_certificates(&args.dir, &args.names, args.days, args.new_ca)
            {
                Ok(generated) => {
                    eprintln!(
                        "wrote {}/{{ca.crt,tls.crt,tls.key}}{}; caBundle:",
                        args.dir.display(),
                        if generated.reused_ca {
                            " (kept the existing CA)"
                        } else {
                            ""
                        }
                    );
                    println!("{}", generated.ca_bundle);
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("rsg certs: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => {
            init_logging(cli.log_format);
            rsg::allocator::limit_arenas();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("rsg run: starting the runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(rsg::run::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "rsg stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
