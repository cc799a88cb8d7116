use super::*;

fn parse(url: &str) -> Result<MemcachedConfig> {
    let mut parsed = CacheUrl::parse(url)?;
    let config = MemcachedConfig::from_url(&mut parsed)?;
    parsed.finish()?;
    Ok(config)
}

#[test]
fn one_or_many_servers_and_the_params() {
    let config = parse("memcached://127.0.0.1:11211").unwrap();
    assert_eq!(config.servers, ["127.0.0.1:11211"]);
    assert_eq!(config.timeout, DEFAULT_TIMEOUT);
    assert_eq!(config.poll_interval, DEFAULT_POLL_INTERVAL);
    assert_eq!(config.first_poll, DEFAULT_FIRST_POLL);

    let config = parse(
        "memcached://10.0.0.1:11211,10.0.0.2:11212?timeout_ms=500&poll_ms=20&first_poll_ms=2&max_value_size=1000",
    )
    .unwrap();
    assert_eq!(config.servers, ["10.0.0.1:11211", "10.0.0.2:11212"]);
    assert_eq!(config.timeout, Duration::from_millis(500));
    assert_eq!(config.poll_interval, Duration::from_millis(20));
    assert_eq!(config.first_poll, Duration::from_millis(2));
    assert_eq!(config.max_value_size, 1000);
}

#[test]
fn ports_default_and_ipv6_literals_keep_their_brackets() {
    assert_eq!(with_port("cache").unwrap(), "cache:11211");
    assert_eq!(with_port("cache:99").unwrap(), "cache:99");
    assert_eq!(with_port("[::1]").unwrap(), "[::1]:11211");
    assert_eq!(with_port("[::1]:99").unwrap(), "[::1]:99");
    assert!(with_port("cache:http").is_err());
    assert!(with_port(":11211").is_err());
    assert!(with_port("[::1").is_err());
    assert!(with_port("[::1]x").is_err());
    assert!(with_port("::1").is_err());
}

#[test]
fn bad_urls_are_refused_with_a_reason() {
    for (url, says) in [
        ("memcached://", "at least one"),
        ("memcached://a:1,,b:2", "no empty entries"),
        ("memcached://h:11211/0", "no path"),
        ("memcached://u:p@h:11211", "no user"),
        ("memcached://h?timeout_ms=0", "more than 0"),
        ("memcached://h?poll_ms=soon", "whole number"),
        ("memcached://h?first_poll_ms=0", "more than 0"),
        ("memcached://h?first_poll_ms=-5", "whole number"),
        ("memcached://h?timeout=5", "unknown parameter"),
    ] {
        let err = parse(url).unwrap_err();
        assert!(err.is_invalid_input(), "{url}");
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
}

#[test]
fn checked_servers_refuses_empty_lists_and_zero_durations() {
    assert!(MemcachedConfig::new(Vec::<String>::new())
        .checked_servers()
        .is_err());
    let zero = MemcachedConfig::default().timeout(Duration::ZERO);
    assert!(zero
        .checked_servers()
        .unwrap_err()
        .to_string()
        .contains("timeout"));
    let zero = MemcachedConfig::default().first_poll(Duration::ZERO);
    assert!(zero
        .checked_servers()
        .unwrap_err()
        .to_string()
        .contains("first_poll"));
    assert_eq!(
        MemcachedConfig::new(["a", "b:1"])
            .checked_servers()
            .unwrap(),
        ["a:11211", "b:1"]
    );
}
