use stampede::{synchronized, Error};

#[synchronized(name = "job:{id}")]
async fn job(id: u32) -> Result<u32, Error> {
    Ok(id)
}

fn main() {}
