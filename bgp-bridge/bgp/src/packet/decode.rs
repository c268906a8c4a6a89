//! Decoding an UPDATE body: the framing walked attribute by attribute
//! (RFC 4271 4.3, RFC 4760, RFC 7606).

use super::*;

/// Decodes an UPDATE body (the message without its 19-octet header) under
/// what the session negotiated. Never panics, whatever the bytes.
pub fn decode(body: &[u8], session: &Negotiated) -> Decoded {
    match decode_body(body, session) {
        Ok((update, problems)) => Decoded::Update { update, problems },
        Err(notification) => Decoded::Reset(notification),
    }
}

pub(super) fn decode_body(
    body: &[u8],
    session: &Negotiated,
) -> Result<(Update, Vec<Problem>), Notification> {
    // A body too short for the two length fields is a header-level length
    // error: the data is the message length as the header gave it.
    let Some(withdrawn_len) = read_u16(body, 0).filter(|_| body.len() >= 4) else {
        let length = u16::try_from(body.len() + HEADER_LEN).unwrap_or(u16::MAX);
        return Err(reset(
            error::MESSAGE_HEADER,
            error::BAD_MESSAGE_LENGTH,
            length.to_be_bytes().to_vec(),
        ));
    };
    let withdrawn_end = 2 + usize::from(withdrawn_len);
    // Withdrawn Routes Length + Total Attribute Length + 23 > message length
    // (RFC 4271 6.3): the NLRI cannot be located, so no treat-as-withdraw.
    let Some(attributes_len) = read_u16(body, withdrawn_end) else {
        return Err(malformed_attribute_list());
    };
    let attributes_start = withdrawn_end + 2;
    let attributes_end = attributes_start + usize::from(attributes_len);
    if attributes_end > body.len() {
        return Err(malformed_attribute_list());
    }
    let invalid_network_field = || {
        reset(
            error::UPDATE_MESSAGE,
            error::INVALID_NETWORK_FIELD,
            Vec::new(),
        )
    };
    let withdrawn = parse_prefixes(&body[2..withdrawn_end], Family::Ipv4Unicast)
        .map_err(|_| invalid_network_field())?;
    let nlri = parse_prefixes(&body[attributes_end..], Family::Ipv4Unicast)
        .map_err(|_| invalid_network_field())?;

    let mut walk = Walk::new(session);
    walk.attributes(&body[attributes_start..attributes_end])?;
    Ok(walk.finish(withdrawn, nlri, body.len() == 4))
}

/// Parses a run of `<length, prefix>` pairs (RFC 4271 4.3, RFC 4760 5).
/// Host bits past the length are cleared. Fails on a length longer than
/// the family's addresses or a prefix that runs past the end (RFC 7606
/// 5.3: the caller resets the session).
pub(super) fn parse_prefixes(mut bytes: &[u8], family: Family) -> Result<Vec<IpNet>, &'static str> {
    let max_len: u8 = match family {
        Family::Ipv4Unicast => 32,
        Family::Ipv6Unicast => 128,
    };
    let mut prefixes = Vec::new();
    while let Some((&len, rest)) = bytes.split_first() {
        if len > max_len {
            return Err("prefix length longer than the address");
        }
        let octets = usize::from(len).div_ceil(8);
        if octets > rest.len() {
            return Err("prefix runs past the end of the field");
        }
        let prefix = match family {
            Family::Ipv4Unicast => {
                let mut address = [0u8; 4];
                address[..octets].copy_from_slice(&rest[..octets]);
                Ipv4Net::new(Ipv4Addr::from(address), len).map(|net| IpNet::V4(net.trunc()))
            }
            Family::Ipv6Unicast => {
                let mut address = [0u8; 16];
                address[..octets].copy_from_slice(&rest[..octets]);
                Ipv6Net::new(Ipv6Addr::from(address), len).map(|net| IpNet::V6(net.trunc()))
            }
        };
        prefixes.push(prefix.map_err(|_| "prefix length longer than the address")?);
        bytes = &rest[octets..];
    }
    Ok(prefixes)
}

/// The routes an MP_REACH_NLRI announces.
#[derive(Debug)]
pub(super) struct Reach {
    next_hop: IpAddr,
    link_local: Option<Ipv6Addr>,
    nlri: Vec<IpNet>,
}

/// The state of one walk through an attribute list.
pub(super) struct Walk<'s> {
    session: &'s Negotiated,
    attributes: Attributes,
    seen: [bool; 256],
    /// NEXT_HOP, or why it is unusable; checked only if the body has NLRI.
    next_hop: Option<Result<Ipv4Addr, String>>,
    as4_path: Option<Vec<AsSegment>>,
    /// The rare attributes, boxed at the end if any; those kept as they
    /// came gathered apart.
    rare: Rare,
    other: Vec<RawAttribute>,
    as4_aggregator: Option<(Asn, Ipv4Addr)>,
    reach: Option<Reach>,
    unreach: Option<(Family, Vec<IpNet>)>,
    /// An MP_REACH_NLRI was met, whatever its family.
    reach_seen: bool,
    withdraw: bool,
    problems: Vec<Problem>,
}

impl<'s> Walk<'s> {
    fn new(session: &'s Negotiated) -> Self {
        Self {
            session,
            attributes: Attributes::default(),
            seen: [false; 256],
            next_hop: None,
            as4_path: None,
            rare: Rare::default(),
            other: Vec::new(),
            as4_aggregator: None,
            reach: None,
            unreach: None,
            reach_seen: false,
            withdraw: false,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, attribute: Option<u8>, action: Action, reason: impl Into<String>) {
        if action == Action::TreatAsWithdraw {
            self.withdraw = true;
        }
        self.problems.push(Problem {
            attribute,
            action,
            reason: reason.into(),
        });
    }

    fn discard(&mut self, type_code: u8, reason: impl Into<String>) {
        self.problem(Some(type_code), Action::AttributeDiscard, reason);
    }

    fn withdraw(&mut self, type_code: u8, reason: impl Into<String>) {
        self.problem(Some(type_code), Action::TreatAsWithdraw, reason);
    }

    /// Walks the attribute list, attribute by attribute (RFC 7606 4).
    fn attributes(&mut self, mut list: &[u8]) -> Result<(), Notification> {
        while !list.is_empty() {
            let header_len = if list[0] & flag::EXTENDED_LENGTH != 0 {
                4
            } else {
                3
            };
            let value_len = match header_len {
                4 => read_u16(list, 2).map(usize::from),
                _ => list.get(2).copied().map(usize::from),
            };
            let Some(value_len) = value_len.filter(|len| header_len + len <= list.len()) else {
                return self.broken_list(list.len() < header_len);
            };
            let (raw, rest) = list.split_at(header_len + value_len);
            self.attribute(raw[0], raw[1], &raw[header_len..], raw)?;
            list = rest;
        }
        Ok(())
    }

    /// The attribute list cannot be walked to its end, but the framing
    /// still locates the NLRI: treat as withdraw (a MUST in RFC 7606 4).
    /// An MP_REACH_NLRI comes first when there is one (RFC 7606 5.1), so
    /// one not seen before the break is taken to be absent.
    fn broken_list(&mut self, short_header: bool) -> Result<(), Notification> {
        let reason = if short_header {
            "the attribute list ends inside an attribute header"
        } else {
            "an attribute runs past the end of the attribute list"
        };
        self.problem(None, Action::TreatAsWithdraw, reason);
        Ok(())
    }

    fn attribute(
        &mut self,
        flags: u8,
        type_code: u8,
        value: &[u8],
        raw: &[u8],
    ) -> Result<(), Notification> {
        let mp = matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI);
        if std::mem::replace(&mut self.seen[usize::from(type_code)], true) {
            if mp {
                return Err(malformed_attribute_list());
            }
            self.discard(type_code, "repeated: all but the first dropped");
            return Ok(());
        }
        let ebgp = self.session.is_ebgp();
        match type_code {
            code::LOCAL_PREF | code::ORIGINATOR_ID | code::CLUSTER_LIST if ebgp => {
                self.discard(type_code, "from an external neighbor");
                return Ok(());
            }
            code::AS4_PATH | code::AS4_AGGREGATOR if self.session.four_octet_as => {
                self.discard(type_code, "between 4-octet AS speakers (RFC 6793)");
                return Ok(());
            }
            _ => {}
        }
        if let Some(expected) = expected_flags(type_code)
            && flags & (flag::OPTIONAL | flag::TRANSITIVE) != expected
        {
            let reason = format!("flags {flags:#04x} conflict with the attribute's kind");
            match type_code {
                // RFC 6793 6: errors in the AS4 attributes discard them.
                code::AS4_PATH | code::AS4_AGGREGATOR => {
                    self.discard(type_code, reason);
                    return Ok(());
                }
                // Still parsed below: their NLRI must be withdrawn.
                code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => self.withdraw(type_code, reason),
                _ => {
                    self.withdraw(type_code, reason);
                    return Ok(());
                }
            }
        }
        match type_code {
            code::ORIGIN => match value {
                [0] => self.attributes.origin = Origin::Igp,
                [1] => self.attributes.origin = Origin::Egp,
                [2] => self.attributes.origin = Origin::Incomplete,
                [other] => self.withdraw(type_code, format!("undefined value {other}")),
                _ => self.withdraw(type_code, format!("length {} (not 1)", value.len())),
            },
            code::AS_PATH => {
                let width = if self.session.four_octet_as { 4 } else { 2 };
                match parse_as_path(value, width) {
                    Ok(segments) => self.attributes.as_path = segments.into(),
                    Err(reason) => self.withdraw(type_code, reason),
                }
            }
            code::NEXT_HOP => {
                self.next_hop = Some(match <[u8; 4]>::try_from(value) {
                    Ok(octets) => {
                        let address = Ipv4Addr::from(octets);
                        match bad_next_hop(IpAddr::V4(address)) {
                            Some(what) => Err(format!("{address} is {what}")),
                            None => Ok(address),
                        }
                    }
                    Err(_) => Err(format!("length {} (not 4)", value.len())),
                });
            }
            code::MED => match read_u32(value) {
                Some(med) => self.attributes.set_med(Some(med)),
                None => self.withdraw(type_code, format!("length {} (not 4)", value.len())),
            },
            code::LOCAL_PREF => match read_u32(value) {
                Some(local_pref) => self.attributes.set_local_pref(Some(local_pref)),
                None => self.withdraw(type_code, format!("length {} (not 4)", value.len())),
            },
            code::ATOMIC_AGGREGATE => {
                if value.is_empty() {
                    self.rare.atomic_aggregate = true;
                } else {
                    self.discard(type_code, format!("length {} (not 0)", value.len()));
                }
            }
            code::AGGREGATOR => {
                let width = if self.session.four_octet_as { 4 } else { 2 };
                match parse_aggregator(value, width) {
                    Some(aggregator) => self.rare.aggregator = Some(aggregator),
                    None => self.discard(
                        type_code,
                        format!("length {} (not {})", value.len(), width + 4),
                    ),
                }
            }
            code::COMMUNITIES => match words(value) {
                Some(communities) => self.attributes.communities = communities.into(),
                None => self.withdraw(
                    type_code,
                    format!("length {} (not a non-zero multiple of 4)", value.len()),
                ),
            },
            code::ORIGINATOR_ID => match <[u8; 4]>::try_from(value) {
                Ok(octets) => self.rare.originator_id = Some(Ipv4Addr::from(octets)),
                Err(_) => self.withdraw(type_code, format!("length {} (not 4)", value.len())),
            },
            code::CLUSTER_LIST => match words(value) {
                Some(ids) => {
                    self.rare.cluster_list = ids.into_iter().map(Ipv4Addr::from).collect();
                }
                None => self.withdraw(
                    type_code,
                    format!("length {} (not a non-zero multiple of 4)", value.len()),
                ),
            },
            code::MP_REACH_NLRI => {
                self.reach_seen = true;
                self.mp_reach(value, raw)?;
            }
            code::MP_UNREACH_NLRI => self.mp_unreach(value, raw)?,
            code::AS4_PATH => match parse_as_path(value, 4) {
                Ok(segments)
                    if segments.iter().any(|segment| {
                        matches!(
                            segment,
                            AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_)
                        )
                    }) =>
                {
                    self.discard(type_code, "confederation segments (RFC 6793 6)");
                }
                Ok(segments) => self.as4_path = Some(segments),
                Err(reason) => self.discard(type_code, reason),
            },
            code::AS4_AGGREGATOR => match parse_aggregator(value, 4) {
                Some(aggregator) => self.as4_aggregator = Some(aggregator),
                None => self.discard(type_code, format!("length {} (not 8)", value.len())),
            },
            code::EXTENDED_COMMUNITIES
            | code::IPV6_EXTENDED_COMMUNITIES
            | code::LARGE_COMMUNITIES => {
                // RFC 7606 7.14, 7.15 and RFC 8092 6 treat a bad length
                // as withdraw.
                let unit = match type_code {
                    code::EXTENDED_COMMUNITIES => 8,
                    code::IPV6_EXTENDED_COMMUNITIES => 20,
                    _ => 12,
                };
                if value.is_empty() || !value.len().is_multiple_of(unit) {
                    self.withdraw(
                        type_code,
                        format!("length {} (not a non-zero multiple of {unit})", value.len()),
                    );
                } else if type_code == code::LARGE_COMMUNITIES {
                    self.rare.large_communities = large_communities(value).into();
                } else if type_code == code::EXTENDED_COMMUNITIES {
                    self.rare.extended_communities = value
                        .chunks_exact(8)
                        .filter_map(|octets| Some(u64::from_be_bytes(octets.try_into().ok()?)))
                        .collect();
                } else {
                    // IPv6 extended communities: not interpreted, passed
                    // on as they came.
                    self.other.push(RawAttribute {
                        flags: flags & !flag::EXTENDED_LENGTH,
                        code: type_code,
                        value: value.to_vec(),
                    });
                }
            }
            _ if flags & flag::OPTIONAL == 0 => {
                return Err(reset(
                    error::UPDATE_MESSAGE,
                    error::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    raw.to_vec(),
                ));
            }
            // Unknown optional transitive: kept, and partial from here on
            // (RFC 4271 5). Unknown optional non-transitive: quietly dropped.
            _ if flags & flag::TRANSITIVE != 0 => self.other.push(RawAttribute {
                flags: (flags | flag::PARTIAL) & !flag::EXTENDED_LENGTH,
                code: type_code,
                value: value.to_vec(),
            }),
            _ => {}
        }
        Ok(())
    }

    /// MP_REACH_NLRI (RFC 4760 3): AFI, SAFI, nexthop, reserved, NLRI.
    /// Anything malformed resets the session (RFC 7606 7.11).
    fn mp_reach(&mut self, value: &[u8], raw: &[u8]) -> Result<(), Notification> {
        let malformed = || {
            reset(
                error::UPDATE_MESSAGE,
                error::OPTIONAL_ATTRIBUTE_ERROR,
                raw.to_vec(),
            )
        };
        let [afi_high, afi_low, safi, next_hop_len, rest @ ..] = value else {
            return Err(malformed());
        };
        let afi = u16::from_be_bytes([*afi_high, *afi_low]);
        let Some(family) = self.negotiated(afi, *safi, code::MP_REACH_NLRI) else {
            return Ok(());
        };
        let next_hop_len = usize::from(*next_hop_len);
        // The next hop, then one reserved octet (ignored on receipt).
        if rest.len() < next_hop_len + 1 {
            return Err(malformed());
        }
        let (next_hop, nlri) = rest.split_at(next_hop_len);
        let extended = family == Family::Ipv4Unicast && self.session.extended_next_hop_ipv4;
        let (next_hop, link_local) = match next_hop.len() {
            4 if family == Family::Ipv4Unicast => {
                let octets: [u8; 4] = next_hop.try_into().map_err(|_| malformed())?;
                (IpAddr::V4(Ipv4Addr::from(octets)), None)
            }
            16 | 32 if family == Family::Ipv6Unicast || extended => {
                ipv6_next_hop(next_hop).ok_or_else(malformed)?
            }
            _ => return Err(malformed()),
        };
        let nlri = parse_prefixes(&nlri[1..], family).map_err(|_| malformed())?;
        if !nlri.is_empty()
            && let Some(what) = bad_next_hop(next_hop)
        {
            self.withdraw(code::MP_REACH_NLRI, format!("nexthop {next_hop} is {what}"));
        }
        self.reach = Some(Reach {
            next_hop,
            link_local,
            nlri,
        });
        Ok(())
    }

    /// MP_UNREACH_NLRI (RFC 4760 4): AFI, SAFI, withdrawn routes.
    fn mp_unreach(&mut self, value: &[u8], raw: &[u8]) -> Result<(), Notification> {
        let malformed = || {
            reset(
                error::UPDATE_MESSAGE,
                error::OPTIONAL_ATTRIBUTE_ERROR,
                raw.to_vec(),
            )
        };
        let [afi_high, afi_low, safi, withdrawn @ ..] = value else {
            return Err(malformed());
        };
        let afi = u16::from_be_bytes([*afi_high, *afi_low]);
        let Some(family) = self.negotiated(afi, *safi, code::MP_UNREACH_NLRI) else {
            return Ok(());
        };
        let withdrawn = parse_prefixes(withdrawn, family).map_err(|_| malformed())?;
        self.unreach = Some((family, withdrawn));
        Ok(())
    }

    /// The family of an MP attribute if the session carries it; a problem
    /// noted if not.
    fn negotiated(&mut self, afi: u16, safi: u8, type_code: u8) -> Option<Family> {
        let family = Family::from_afi_safi(afi, safi)
            .filter(|family| self.session.families.contains(family));
        if family.is_none() {
            self.problem(
                Some(type_code),
                Action::Ignore,
                format!("AFI {afi} SAFI {safi} not negotiated on this session"),
            );
        }
        family
    }

    /// Checks what needs the whole list (AS4 merge, the neighbor's AS,
    /// mandatory attributes) and puts the UPDATE together.
    fn finish(
        mut self,
        mut withdrawn: Vec<IpNet>,
        mut nlri: Vec<IpNet>,
        empty: bool,
    ) -> (Update, Vec<Problem>) {
        self.rare.other = std::mem::take(&mut self.other).into_boxed_slice();
        if !nlri.is_empty() && !self.session.families.contains(&Family::Ipv4Unicast) {
            self.problem(
                None,
                Action::Ignore,
                "IPv4 NLRI on a session that did not negotiate IPv4 unicast",
            );
            nlri.clear();
        }
        if !self.session.four_octet_as {
            self.merge_as4();
        }
        self.attributes.rare = std::mem::take(&mut self.rare).boxed();
        let reach_nlri = self
            .reach
            .as_ref()
            .is_some_and(|reach| !reach.nlri.is_empty());
        if self.seen[usize::from(code::AS_PATH)] && !self.withdraw && self.session.is_ebgp() {
            let first = self.attributes.as_path.first_as();
            if (!nlri.is_empty() || reach_nlri) && first != Some(self.session.remote_as) {
                self.withdraw(
                    code::AS_PATH,
                    format!(
                        "does not start with the neighbor's AS {}",
                        self.session.remote_as
                    ),
                );
            }
        }
        if !nlri.is_empty() || reach_nlri {
            for type_code in [code::ORIGIN, code::AS_PATH] {
                if !self.seen[usize::from(type_code)] {
                    self.withdraw(type_code, "missing (mandatory with NLRI)");
                }
            }
        }
        let mut body_next_hop = None;
        if !nlri.is_empty() {
            match self.next_hop.take() {
                Some(Ok(address)) => body_next_hop = Some(address),
                Some(Err(reason)) => self.withdraw(code::NEXT_HOP, reason),
                None => self.withdraw(code::NEXT_HOP, "missing (mandatory with NLRI)"),
            }
        }

        let mut update = Update::default();
        if empty {
            update.end_of_rib.push(Family::Ipv4Unicast);
        }
        if let Some((family, unreach)) = self.unreach.take() {
            if unreach.is_empty() && !self.reach_seen && withdrawn.is_empty() && nlri.is_empty() {
                update.end_of_rib.push(family);
            }
            withdrawn.extend(unreach);
        }
        let reach = self.reach.take();
        if self.withdraw {
            withdrawn.extend(nlri);
            withdrawn.extend(reach.into_iter().flat_map(|reach| reach.nlri));
        } else {
            if let Some(next_hop) = body_next_hop {
                let attributes = Arc::new(Attributes {
                    next_hop: NextHop::from(IpAddr::V4(next_hop)),
                    ..self.attributes.clone()
                });
                update.announced.extend(
                    nlri.into_iter()
                        .map(|prefix| (prefix, Arc::clone(&attributes))),
                );
            }
            if let Some(reach) = reach.filter(|reach| !reach.nlri.is_empty()) {
                let attributes = Arc::new(Attributes {
                    next_hop: NextHop::new(Some(reach.next_hop), reach.link_local),
                    ..self.attributes
                });
                update.announced.extend(
                    reach
                        .nlri
                        .into_iter()
                        .map(|prefix| (prefix, Arc::clone(&attributes))),
                );
            }
        }
        update.withdrawn = withdrawn;
        (update, self.problems)
    }

    /// Puts AS4_AGGREGATOR and AS4_PATH into what a 2-octet session
    /// carried (RFC 6793 4.2.3).
    fn merge_as4(&mut self) {
        if let Some((asn, _)) = self.rare.aggregator
            && asn != AS_TRANS
        {
            // The aggregating speaker was 2-octet: the AS4 attributes were
            // put on by someone else and are not to be trusted.
            if self.as4_path.take().is_some() {
                self.discard(code::AS4_PATH, "AGGREGATOR is not AS_TRANS");
            }
            if self.as4_aggregator.take().is_some() {
                self.discard(code::AS4_AGGREGATOR, "AGGREGATOR is not AS_TRANS");
            }
            return;
        }
        if let Some(aggregator) = self.as4_aggregator.take() {
            self.rare.aggregator = Some(aggregator);
        }
        let Some(as4_path) = self.as4_path.take() else {
            return;
        };
        let as_path = self.attributes.as_path.to_segments();
        let as_len: usize = as_path.iter().map(AsSegment::path_len).sum();
        let as4_len: usize = as4_path.iter().map(AsSegment::path_len).sum();
        if as_len < as4_len {
            self.discard(code::AS4_PATH, "longer than AS_PATH");
            return;
        }
        // Keep as many leading ASes of AS_PATH as AS4_PATH lacks, then
        // AS4_PATH; confederation segments at the join stay with the head.
        let mut lacking = as_len - as4_len;
        let mut merged = Vec::new();
        for segment in as_path {
            match segment {
                AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => {
                    merged.push(segment.clone());
                }
                _ if lacking == 0 => break,
                AsSegment::Sequence(asns) => {
                    let take = lacking.min(asns.len());
                    merged.push(AsSegment::Sequence(asns[..take].to_vec()));
                    lacking -= take;
                }
                AsSegment::Set(_) => {
                    merged.push(segment.clone());
                    lacking -= 1;
                }
            }
        }
        for segment in as4_path {
            match (merged.last_mut(), segment) {
                (Some(AsSegment::Sequence(head)), AsSegment::Sequence(tail)) => {
                    head.extend(tail);
                }
                (_, segment) => merged.push(segment),
            }
        }
        self.attributes.as_path = merged.into();
    }
}
