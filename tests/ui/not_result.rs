use stampede::{cached, Cache};

#[cached(cache = cache, key = "n:{n}")]
async fn square(cache: &Cache, n: u32) -> u32 {
    n * n
}

fn main() {}
