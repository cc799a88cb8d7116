use stampede::{cached, Cache, Error};

#[cached(cache = cache, key = "user:{uid}")]
async fn load(cache: &Cache, id: u64) -> Result<u64, Error> {
    Ok(id)
}

fn main() {}
