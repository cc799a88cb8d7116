use stampede::{synchronized, Cache, Error};

#[synchronized(cache = cache, name = "job:{id}", wiat = "2m")]
async fn job(cache: &Cache, id: u32) -> Result<u32, Error> {
    Ok(id)
}

fn main() {}
