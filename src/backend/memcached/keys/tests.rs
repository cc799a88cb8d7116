use super::*;

#[test]
fn short_keys_pass_unchanged_and_borrowed() {
    let key = "app:user:42-lock";
    assert!(matches!(wire_key(key).unwrap(), Cow::Borrowed(k) if k == key));
    let exactly = "k".repeat(MAX_KEY_LEN);
    assert_eq!(wire_key(&exactly).unwrap(), exactly);
    assert_eq!(wire_key("café:ünïcode").unwrap(), "café:ünïcode");
}

#[test]
fn long_keys_map_to_head_and_hash_within_the_limit() {
    let key = format!("ns:{}", "x".repeat(400));
    let mapped = wire_key(&key).unwrap();
    assert_eq!(mapped.len(), MAX_KEY_LEN);
    assert!(mapped.starts_with("ns:xxx"));
    let (head, hash) = mapped.rsplit_once('#').unwrap();
    assert_eq!(head.len(), MAX_HEAD_LEN);
    assert_eq!(hash.len(), HASH_HEX_LEN);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    // Stable: the same key always maps to the same wire key.
    assert_eq!(wire_key(&key).unwrap(), mapped);
}

#[test]
fn long_keys_with_a_common_head_do_not_collide() {
    let head = "h".repeat(300);
    let a = wire_key(&format!("{head}a")).unwrap().into_owned();
    let b = wire_key(&format!("{head}b")).unwrap().into_owned();
    assert_ne!(a, b);
    assert_eq!(a[..MAX_HEAD_LEN], b[..MAX_HEAD_LEN]);
}

#[test]
fn multibyte_characters_are_not_split() {
    // 'é' is two bytes: a head cut at an odd offset would split one.
    let key = format!("k{}", "é".repeat(200));
    let mapped = wire_key(&key).unwrap();
    assert!(mapped.len() <= MAX_KEY_LEN);
    assert!(mapped.starts_with("kéé"));
}

#[test]
fn whitespace_and_control_characters_are_refused_by_name() {
    for (key, shown) in [
        ("a b", "' '"),
        ("tab\there", "'\\t'"),
        ("nl\n", "'\\n'"),
        ("nul\0", "'\\0'"),
        ("del\u{7f}", "'\\u{7f}'"),
    ] {
        let err = wire_key(key).unwrap_err();
        assert!(err.is_invalid_input());
        let message = err.to_string();
        assert!(message.contains("whitespace or control"), "{message}");
        assert!(message.contains(shown), "{message} should name {shown}");
    }
    // Checked before mapping: a long key is refused too.
    assert!(wire_key(&format!("{} x", "k".repeat(300))).is_err());
}

#[test]
fn fence_keys_are_marked_companions_of_the_lock_key() {
    assert_eq!(fence_key("job-lock").unwrap(), b"\xFFfence:job-lock");
    // Fitted to the 243 bytes the marker and the kind leave.
    let fits = "j".repeat(MAX_KEY_LEN - 7);
    assert_eq!(fence_key(&fits).unwrap()[7..], *fits.as_bytes());
    for long in [format!("{fits}k"), format!("{}-lock", "j".repeat(300))] {
        let fence = fence_key(&long).unwrap();
        assert_eq!(fence.len(), MAX_KEY_LEN);
        assert!(fence.starts_with(b"\xFFfence:jjj"));
        assert_ne!(fence, wire_key(&long).unwrap().as_bytes());
    }
    assert!(fence_key("a b-lock").unwrap_err().is_invalid_input());
}

/// `key`'s mapped form as the mapping wrote it before keys that look mapped
/// were mapped too: what an attacker would craft to alias a long key.
fn crafted_alias(key: &str) -> String {
    let mut head_len = (MAX_KEY_LEN - 1 - HASH_HEX_LEN).min(key.len());
    while !key.is_char_boundary(head_len) {
        head_len -= 1;
    }
    let hex: String = Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{}#{hex}", &key[..head_len])
}

#[test]
fn a_short_key_crafted_as_a_long_keys_mapped_form_is_mapped_apart() {
    let long = format!("ns:{}", "x".repeat(300));
    let alias = crafted_alias(&long);
    assert_eq!(alias.len(), MAX_KEY_LEN);
    assert_ne!(wire_key(&alias).unwrap(), wire_key(&long).unwrap());
    // Upper-case hex looks mapped too; so does a short key ending that way.
    let upper = format!("{}#{}", &alias[..185], alias[186..].to_uppercase());
    let short = format!("k{}", &alias[185..]);
    for lookalike in [&alias, &upper, &short] {
        let wire = wire_key(lookalike).unwrap();
        assert_ne!(&*wire, lookalike.as_str());
        assert!(wire.len() <= MAX_KEY_LEN);
    }
    // One hex digit short of a mapped form, or no '#': sent as it is.
    for plain in [&alias[..249], &alias.replace('#', "_")] {
        assert_eq!(wire_key(plain).unwrap(), *plain);
    }
}

mod properties {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Keys memcached accepts: printable ASCII heavy in `#` and hex
    /// digits, and multibyte characters, of any length up to ~1 KiB.
    fn any_key() -> impl Strategy<Value = String> {
        let ch = prop_oneof![
            6 => proptest::char::range('!', '~'),
            3 => proptest::sample::select(vec!['#', 'a', 'f', '0', '9', 'F', '-']),
            2 => proptest::sample::select(vec!['é', '€', '😀', 'ÿ', '\u{fffd}']),
        ];
        proptest::collection::vec(ch, 1..320).prop_map(|chars| chars.into_iter().collect())
    }

    /// A key of exactly `len` bytes, or with a multibyte character across
    /// byte `len` (where a head is cut).
    fn sized_key() -> impl Strategy<Value = String> {
        let lens = vec![178, 179, 185, 186, 243, 244, 249, 250, 251, 252];
        let tails = vec!["", "é", "€", "😀"];
        (
            proptest::sample::select(lens),
            proptest::sample::select(tails),
            any::<bool>(),
        )
            .prop_map(|(len, tail, across)| {
                let pad = if across { len - 1 } else { len - tail.len() };
                format!("{}{tail}", "k".repeat(pad))
            })
    }

    /// Keys derived from `key` to collide with its names: its wire form,
    /// its mapped form crafted by hand (in both cases), its fence
    /// counter's old name and its fence name where it is UTF-8.
    fn adversaries(key: &str) -> Vec<String> {
        let alias = crafted_alias(key);
        let mut derived = vec![
            wire_key(key).unwrap().into_owned(),
            alias.clone(),
            alias.to_uppercase(),
            format!("{key}-fence"),
            format!("{key}-lock"),
            format!("~{key}"),
        ];
        derived.extend(String::from_utf8(fence_key(key).unwrap()).ok());
        derived
    }

    fn check(keys: &[String]) -> Result<(), TestCaseError> {
        let mut wires: HashMap<Vec<u8>, &str> = HashMap::new();
        let mut fences: HashMap<Vec<u8>, &str> = HashMap::new();
        for key in keys {
            let wire = wire_key(key).unwrap().into_owned().into_bytes();
            let fence = fence_key(key).unwrap();
            prop_assert!(wire.len() <= MAX_KEY_LEN, "{key:?}: wire {}", wire.len());
            prop_assert!(fence.len() <= MAX_KEY_LEN, "{key:?}: fence {}", fence.len());
            if let Some(other) = wires.insert(wire, key) {
                prop_assert_eq!(other, key.as_str(), "two keys, one wire key");
            }
            if let Some(other) = fences.insert(fence, key) {
                prop_assert_eq!(other, key.as_str(), "two lock keys, one fence name");
            }
        }
        for (fence, lock_key) in &fences {
            if let Some(user_key) = wires.get(fence) {
                prop_assert!(
                    false,
                    "key {user_key:?} is sent as the fence counter of {lock_key:?}"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn wire_keys_fit_never_collide_and_never_name_a_counter(
            base in proptest::collection::vec(prop_oneof![any_key(), sized_key()], 1..12),
        ) {
            let mut keys = base.clone();
            for key in &base {
                keys.extend(adversaries(key));
            }
            // Second-order: the names derived from the derived names.
            let firsts: Vec<String> = keys.iter().skip(base.len()).cloned().collect();
            for key in &firsts {
                keys.push(wire_key(key).unwrap().into_owned());
                keys.push(crafted_alias(key));
            }
            keys.sort();
            keys.dedup();
            check(&keys)?;
        }
    }
}
