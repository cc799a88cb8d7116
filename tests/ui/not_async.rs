use stampede::{cached, Cache, Error};

#[cached(cache = cache, key = "n:{n}")]
fn square(cache: &Cache, n: u32) -> Result<u32, Error> {
    Ok(n * n)
}

fn main() {}
