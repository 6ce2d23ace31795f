use super::*;
use crate::config::BridgeTopic;

fn line(
    pattern: Option<&str>,
    direction: Direction,
    local: Option<&str>,
    remote: Option<&str>,
) -> TopicMap {
    TopicMap::new(&BridgeTopic {
        pattern: pattern.map(String::from),
        direction,
        qos: 1,
        local_prefix: local.map(String::from),
        remote_prefix: remote.map(String::from),
    })
}

#[test]
fn prefixes_are_swapped_both_ways() {
    let maps = [line(
        Some("sensors/#"),
        Direction::Both,
        Some("gw/"),
        Some("site7/"),
    )];
    assert_eq!(maps[0].local_filter, "gw/sensors/#");
    assert_eq!(maps[0].remote_filter, "site7/sensors/#");
    assert_eq!(map_out(&maps, "gw/sensors/a/t"), "site7/sensors/a/t");
    assert_eq!(map_in(&maps, "site7/sensors/b"), "gw/sensors/b");
}

#[test]
fn empty_pattern_makes_the_prefix_the_topic() {
    // Mosquitto: `topic "" out 0 local/topic remote/topic` maps one topic to another.
    let maps = [line(
        None,
        Direction::Out,
        Some("local/topic"),
        Some("remote/topic"),
    )];
    assert_eq!(maps[0].local_filter, "local/topic");
    assert_eq!(maps[0].remote_filter, "remote/topic");
    assert_eq!(map_out(&maps, "local/topic"), "remote/topic");
    // An `out` line does not map incoming messages.
    assert_eq!(map_in(&maps, "remote/topic"), "remote/topic");
}

#[test]
fn only_one_side_prefixed() {
    let maps = [
        line(Some("a/#"), Direction::In, None, Some("cloud/")),
        line(Some("b/#"), Direction::Out, Some("here/"), None),
    ];
    assert_eq!(map_in(&maps, "cloud/a/1"), "a/1");
    assert_eq!(map_out(&maps, "here/b/2"), "b/2");
    // The first matching line wins; a topic no line matches is unchanged.
    assert_eq!(map_out(&maps, "c/3"), "c/3");
}
