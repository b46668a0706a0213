//! Run the simulator with the incident cluster seeded (for manual poking with kubectl).
use herald_sim::{SimConfig, Simulator, builtin_scenario};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = Simulator::new(SimConfig::default());
    let server = sim.serve().await?;
    let scenario = builtin_scenario("incident").ok_or("no scenario")?;
    sim.seed(&scenario)?;
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/herald-sim.kubeconfig".into());
    server.write_kubeconfig(std::path::Path::new(&path))?;
    println!("kubeconfig written to {path}; server {}", server.url());
    if std::env::args().nth(2).as_deref() == Some("run") {
        let report = sim.run_steps(&scenario, 1.0).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
