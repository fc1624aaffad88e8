//! Data Integrity `eddsa-rdfc-2022`: published test vectors, tamper detection, JSON-LD safe
//! mode, and a differential test against stock `ssi` on generated Open Badges credentials.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use oxbadge::di::{DiError, EddsaRdfc2022, ProofOptions, ProofPurpose};
use oxbadge::jsonld::{ContextLoader, JsonLdError, Profile};
use serde_json::{Value, json};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors");

fn vector(path: &str) -> String {
    std::fs::read_to_string(format!("{VECTORS}/{path}"))
        .unwrap_or_else(|e| panic!("reading vector {path}: {e}"))
}

fn vector_json(path: &str) -> Value {
    serde_json::from_str(&vector(path)).unwrap()
}

/// Seed from a multibase (base58btc) Ed25519 private key with its 2-byte multicodec prefix.
fn seed_from_multibase(multibase: &str) -> [u8; 32] {
    let bytes = bs58::decode(multibase.strip_prefix('z').unwrap())
        .into_vec()
        .unwrap();
    assert_eq!(&bytes[..2], &[0x80, 0x26], "ed25519-priv multicodec prefix");
    bytes[2..].try_into().unwrap()
}

fn w3c_key() -> SigningKey {
    let pair = vector_json("vc-di-eddsa/keyPair.json");
    SigningKey::from_bytes(&seed_from_multibase(
        pair["privateKeyMultibase"].as_str().unwrap(),
    ))
}

fn ob_key() -> SigningKey {
    let seed =
        hex::decode("6241a409e6707bb640a0140a8a32bc3d193c33a661747284d6adfa4ed4180be4").unwrap();
    SigningKey::from_bytes(&seed.try_into().unwrap())
}

fn options_of(proof: &Value) -> ProofOptions {
    ProofOptions {
        verification_method: proof["verificationMethod"].as_str().unwrap().to_owned(),
        created: proof["created"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        proof_purpose: ProofPurpose::AssertionMethod,
        challenge: None,
        domain: None,
    }
}

fn without_proof(signed: &Value) -> Value {
    let mut document = signed.clone();
    document.as_object_mut().unwrap().remove("proof");
    document
}

fn proof_configuration_of(signed: &Value) -> Value {
    let mut proof = signed["proof"].clone();
    proof.as_object_mut().unwrap().remove("proofValue");
    proof
}

#[test]
fn w3c_eddsa_rdfc_2022_vector_is_reproduced_byte_for_byte() {
    let suite = EddsaRdfc2022::default();
    let unsigned = vector_json("vc-di-eddsa/unsigned.json");
    let signed_vector = vector_json("vc-di-eddsa/eddsa-rdfc-2022/signedDataInt.json");
    let config = vector_json("vc-di-eddsa/eddsa-rdfc-2022/proofConfigDataInt.json");

    let forms = suite.canonical_forms(&unsigned, &config).unwrap();
    assert_eq!(
        forms.document,
        vector("vc-di-eddsa/eddsa-rdfc-2022/canonDocDataInt.txt")
    );
    assert_eq!(
        forms.proof_configuration,
        vector("vc-di-eddsa/eddsa-rdfc-2022/proofCanonDataInt.txt")
    );
    assert_eq!(
        hex::encode(forms.hash_data()),
        vector("vc-di-eddsa/eddsa-rdfc-2022/combinedHashDataInt.txt").trim()
    );

    let signed = suite
        .sign(&unsigned, options_of(&config), &w3c_key())
        .unwrap();
    assert_eq!(
        signed["proof"]["proofValue"].as_str().unwrap(),
        vector("vc-di-eddsa/eddsa-rdfc-2022/sigBTC58DataInt.txt").trim()
    );
    assert_eq!(signed["proof"], signed_vector["proof"]);
    assert_eq!(signed, signed_vector);
}

#[test]
fn open_badges_ldp_example_is_reproduced_byte_for_byte() {
    let suite = EddsaRdfc2022::default();
    let signed_vector = vector_json("ob-v3p0-ldp/signed-credential.json");
    let unsigned = without_proof(&signed_vector);

    let forms = suite
        .canonical_forms(&unsigned, &proof_configuration_of(&signed_vector))
        .unwrap();
    assert_eq!(forms.document, vector("ob-v3p0-ldp/document-canon.txt"));
    assert_eq!(
        forms.proof_configuration,
        vector("ob-v3p0-ldp/proof-canon.txt")
    );

    let signed = suite
        .sign(&unsigned, options_of(&signed_vector["proof"]), &ob_key())
        .unwrap();
    assert_eq!(
        signed["proof"]["proofValue"],
        signed_vector["proof"]["proofValue"]
    );
    assert_eq!(signed, signed_vector);
}

fn signed_vectors() -> Vec<(Value, VerifyingKey)> {
    vec![
        (
            vector_json("vc-di-eddsa/eddsa-rdfc-2022/signedDataInt.json"),
            w3c_key().verifying_key(),
        ),
        (
            vector_json("ob-v3p0-ldp/signed-credential.json"),
            ob_key().verifying_key(),
        ),
    ]
}

#[test]
fn published_signed_documents_verify() {
    let suite = EddsaRdfc2022::default();
    for (signed, key) in signed_vectors() {
        suite.verify(&signed, &key).unwrap();
        oxbadge::di::verify_eddsa_rdfc_2022(&signed, &key).unwrap();
    }
}

#[test]
fn a_one_character_change_to_a_claim_fails_verification() {
    let suite = EddsaRdfc2022::default();
    for (mut signed, key) in signed_vectors() {
        let name = signed["name"].as_str().unwrap().to_owned();
        signed["name"] = Value::String(name.replacen('e', "f", 1));
        assert!(matches!(
            suite.verify(&signed, &key),
            Err(DiError::InvalidSignature)
        ));
    }
}

#[test]
fn a_one_character_change_to_the_proof_value_fails_verification() {
    let suite = EddsaRdfc2022::default();
    for (mut signed, key) in signed_vectors() {
        let value = signed["proof"]["proofValue"].as_str().unwrap().to_owned();
        // Change the last base58 character to another valid one.
        let last = value.chars().last().unwrap();
        let replacement = if last == '2' { '3' } else { '2' };
        let tampered = format!("{}{replacement}", &value[..value.len() - 1]);
        signed["proof"]["proofValue"] = Value::String(tampered);
        assert!(matches!(
            suite.verify(&signed, &key),
            Err(DiError::InvalidSignature | DiError::InvalidProofValue(_))
        ));
    }
}

#[test]
fn a_signature_by_another_key_fails_verification() {
    let suite = EddsaRdfc2022::default();
    let (signed, _) = signed_vectors().remove(1);
    assert!(matches!(
        suite.verify(&signed, &w3c_key().verifying_key()),
        Err(DiError::InvalidSignature)
    ));
}

#[test]
fn an_unknown_context_is_refused_by_name_and_never_fetched() {
    let mut document = vector_json("vc-di-eddsa/unsigned.json");
    document["@context"]
        .as_array_mut()
        .unwrap()
        .push("https://example.org/not-pinned/v1".into());
    let error = EddsaRdfc2022::default()
        .sign(
            &document,
            options_of(&vector_json(
                "vc-di-eddsa/eddsa-rdfc-2022/proofConfigDataInt.json",
            )),
            &w3c_key(),
        )
        .unwrap_err();
    match error {
        DiError::JsonLd(JsonLdError::UnknownContext { url }) => {
            assert_eq!(url, "https://example.org/not-pinned/v1");
        }
        other => panic!("expected an unknown context error, got {other:?}"),
    }
}

#[test]
fn an_undefined_term_is_refused_by_name() {
    let mut document = without_proof(&vector_json("ob-v3p0-ldp/signed-credential.json"));
    document["credentialSubject"]["achievement"]["favouriteColour"] = "teal".into();
    let error = ContextLoader::shared().canonicalize(&document).unwrap_err();
    assert_eq!(
        error,
        JsonLdError::UndefinedTerm {
            term: "favouriteColour".into()
        }
    );
    let error = oxbadge::di::sign_eddsa_rdfc_2022(
        &document,
        options_of(&vector_json("ob-v3p0-ldp/signed-credential.json")["proof"]),
        &ob_key(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("favouriteColour"), "{error}");
}

#[test]
fn an_undefined_type_is_refused_by_name() {
    let mut document = without_proof(&vector_json("ob-v3p0-ldp/signed-credential.json"));
    document["credentialSubject"]["achievement"]["type"] = json!(["Achievement", "Trophy"]);
    assert_eq!(
        ContextLoader::shared().canonicalize(&document).unwrap_err(),
        JsonLdError::UndefinedType {
            value: "Trophy".into()
        }
    );
}

#[test]
fn a_vc_1_1_credential_needs_and_accepts_the_data_integrity_context() {
    let mut credential = json!({
        "@context": ["https://www.w3.org/2018/credentials/v1"],
        "id": "urn:uuid:3978344f-8596-4c3a-a978-8fcaba3903c5",
        "type": ["VerifiableCredential"],
        "issuer": "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
        "issuanceDate": "2020-03-10T04:24:12Z",
        "credentialSubject": {"id": "did:example:abcdefgh"}
    });
    let options = options_of(&vector_json(
        "vc-di-eddsa/eddsa-rdfc-2022/proofConfigDataInt.json",
    ));
    let suite = EddsaRdfc2022::default();
    let error = suite
        .sign(&credential, options.clone(), &w3c_key())
        .unwrap_err();
    assert!(
        matches!(
            &error,
            DiError::JsonLd(JsonLdError::UndefinedType { value }) if value == "DataIntegrityProof"
        ),
        "{error}"
    );

    credential["@context"]
        .as_array_mut()
        .unwrap()
        .push(oxbadge::jsonld::DATA_INTEGRITY_V2.into());
    let signed = suite.sign(&credential, options, &w3c_key()).unwrap();
    suite.verify(&signed, &w3c_key().verifying_key()).unwrap();
    let expected = stock_ssi::sign_v1(&credential, &signed["proof"], &w3c_key());
    assert_eq!(signed["proof"]["proofValue"], expected);
}

/// Deterministic generator of varied Open Badges 3.0 credentials (xorshift64*; no `rand` so the
/// corpus is the same on every run and every machine).
struct CredentialGenerator(u64);

impl CredentialGenerator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn text(&mut self) -> String {
        let base = self.pick(&[
            "Teamwork",
            "Advanced Rust \"Ownership\"",
            "Ünïcødé ✓ Bädge 🦀",
            "Line one\nline two\r\nline three",
            "Back\\slash and\ttab",
            "日本語のバッジ",
            "  padded  ",
            "",
        ]);
        format!("{base} {}", self.next() % 1000)
    }

    fn date(&mut self) -> String {
        format!(
            "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            10 + self.next() % 15,
            1 + self.next() % 12,
            1 + self.next() % 28,
            self.next() % 24,
            self.next() % 60,
            self.next() % 60
        )
    }

    fn profile(&mut self, n: u64) -> Value {
        let mut profile = json!({
            "id": format!("https://example.edu/issuers/{n}"),
            "type": ["Profile"],
            "name": self.text(),
        });
        if self.chance(50) {
            profile["url"] = format!("https://example.edu/{n}").into();
        }
        if self.chance(40) {
            profile["email"] = format!("badges{n}@example.edu").into();
        }
        if self.chance(30) {
            profile["description"] = self.text().into();
        }
        if self.chance(30) {
            profile["image"] =
                json!({"id": format!("https://example.edu/logo/{n}.png"), "type": "Image"});
        }
        profile
    }

    fn achievement(&mut self, n: u64) -> Value {
        let mut achievement = json!({
            "id": format!("https://example.edu/achievements/{n}"),
            "type": ["Achievement"],
            "name": self.text(),
            "description": self.text(),
            "criteria": {},
        });
        if self.chance(80) {
            achievement["criteria"]["narrative"] = self.text().into();
        }
        if self.chance(40) || achievement["criteria"].as_object().unwrap().is_empty() {
            achievement["criteria"]["id"] = format!("https://example.edu/criteria/{n}").into();
        }
        if self.chance(50) {
            let mut image =
                json!({"id": format!("https://example.edu/badges/{n}.png"), "type": "Image"});
            if self.chance(50) {
                image["caption"] = self.text().into();
            }
            achievement["image"] = image;
        }
        if self.chance(50) {
            achievement["achievementType"] = self
                .pick(&["Badge", "Certificate", "Course", "ext:Microcredential"])
                .into();
        }
        if self.chance(50) {
            let alignments: Vec<Value> = (0..1 + self.next() % 3)
                .map(|i| {
                    let mut a = json!({
                        "type": ["Alignment"],
                        "targetName": self.text(),
                        "targetUrl": format!("https://framework.example/skills/{n}/{i}"),
                    });
                    if self.chance(50) {
                        a["targetDescription"] = self.text().into();
                    }
                    if self.chance(50) {
                        a["targetFramework"] = "Example Skills Framework".into();
                        a["targetCode"] = format!("SK-{i}").into();
                        a["targetType"] = self
                            .pick(&["CFItem", "ceterms:Credential", "ext:Skill"])
                            .into();
                    }
                    a
                })
                .collect();
            achievement["alignment"] = alignments.into();
        }
        if self.chance(40) {
            achievement["creator"] = self.profile(n + 1000);
        }
        if self.chance(50) {
            let mut tags = vec!["rust", "teamwork", "collaboration"];
            tags.truncate(1 + (self.next() % 3) as usize);
            if self.chance(30) {
                tags.push(tags[0]); // a repeated value is one RDF statement
            }
            achievement["tag"] = json!(tags);
        }
        if self.chance(30) {
            achievement["humanCode"] = format!("HC-{n}").into();
            achievement["fieldOfStudy"] = "Computer Science".into();
            achievement["version"] = "1.0".into();
        }
        if self.chance(30) {
            achievement["creditsAvailable"] =
                [json!(3), json!(2.5), json!(0.75), json!(12)][(self.next() % 4) as usize].clone();
        }
        if self.chance(40) {
            achievement["resultDescription"] = json!([{
                "id": format!("urn:uuid:result-description-{n}"),
                "type": ["ResultDescription"],
                "name": "Final grade",
                "resultType": "LetterGrade",
                // No `allowedValue`: it is an @list, and stock ssi 0.16 drops the rdf:first
                // statements and the rdf:nil terminator of lists (it signs less than the
                // document says); `lists_follow_the_spec` covers lists instead.
                "requiredValue": "C"
            }]);
        }
        achievement
    }

    fn credential(&mut self, n: u64) -> Value {
        let mut contexts = vec![
            oxbadge::jsonld::CREDENTIALS_V2,
            oxbadge::jsonld::OB_V3P0_CONTEXT,
        ];
        let mut credential = json!({
            "id": if self.chance(50) {
                format!("urn:uuid:7f9e3b5c-0000-4000-8000-{n:012}")
            } else {
                format!("https://example.edu/credentials/{n}")
            },
            "type": ["VerifiableCredential", self.pick(&["OpenBadgeCredential", "AchievementCredential"])],
            "validFrom": self.date(),
        });
        credential["issuer"] = if self.chance(85) {
            self.profile(n)
        } else {
            format!("https://example.edu/issuers/{n}").into()
        };
        if self.chance(70) {
            credential["name"] = self.text().into();
        }
        if self.chance(40) {
            credential["description"] = self.text().into();
        }
        if self.chance(30) {
            credential["validUntil"] = "2099-12-31T23:59:59Z".into();
        }
        if self.chance(30) {
            credential["awardedDate"] = self.date().into();
        }
        if self.chance(30) {
            credential["image"] =
                json!({"id": format!("https://example.edu/credential/{n}.png"), "type": "Image"});
        }
        let mut subject = json!({
            "type": ["AchievementSubject"],
            "achievement": self.achievement(n),
        });
        let by_email = self.chance(50);
        if !by_email || self.chance(30) {
            subject["id"] = format!("did:example:learner{n}").into();
        }
        if by_email {
            let salt = format!("salt{n}");
            let email = format!("learner{n}@example.com");
            let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                format!("{email}{salt}").as_bytes(),
            ));
            subject["identifier"] = json!([{
                "type": "IdentityObject",
                "identityType": "emailAddress",
                "hashed": true,
                "salt": salt,
                "identityHash": format!("sha256${hash}"),
            }]);
        }
        if self.chance(40) {
            let mut result = json!({"type": ["Result"], "value": self.pick(&["A", "B", "Pass"])});
            if self.chance(50) {
                result["resultDescription"] = format!("urn:uuid:result-description-{n}").into();
            }
            if self.chance(50) {
                result["status"] = "Completed".into();
            }
            subject["result"] = json!([result]);
        }
        if self.chance(30) {
            subject["activityStartDate"] = "2024-01-15".into();
            subject["activityEndDate"] = "2024-06-30".into();
        }
        if self.chance(20) {
            subject["creditsEarned"] = [json!(3), json!(1.5)][(self.next() % 2) as usize].clone();
        }
        credential["credentialSubject"] = subject;
        if self.chance(40) {
            let evidence: Vec<Value> = (0..1 + self.next() % 2)
                .map(|i| {
                    let mut e = json!({"type": ["Evidence"], "name": self.text()});
                    if self.chance(50) {
                        e["id"] = format!("https://example.edu/evidence/{n}/{i}").into();
                    }
                    if self.chance(50) {
                        e["narrative"] = self.text().into();
                        e["genre"] = "Project".into();
                        e["audience"] = "Employers".into();
                    }
                    if self.chance(30) {
                        e["description"] = self.text().into();
                    }
                    e
                })
                .collect();
            credential["evidence"] = evidence.into();
        }
        if self.chance(30) {
            credential["credentialSchema"] = json!([{
                "id": "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json",
                "type": "1EdTechJsonSchemaValidator2019"
            }]);
            contexts.push(oxbadge::jsonld::OB_V3P0_EXTENSIONS);
        }
        if self.chance(30) {
            credential["credentialStatus"] = json!({
                "id": format!("https://example.edu/status/{n}"),
                "type": "1EdTechRevocationList"
            });
            if !contexts.contains(&oxbadge::jsonld::OB_V3P0_EXTENSIONS) {
                contexts.push(oxbadge::jsonld::OB_V3P0_EXTENSIONS);
            }
        }
        credential["@context"] = json!(contexts);
        credential
    }
}

#[test]
fn fast_path_matches_stock_ssi_on_generated_open_badges() {
    let suite = EddsaRdfc2022::default();
    let key = ob_key();
    let ssi_compatible = EddsaRdfc2022::default().with_profile(Profile::SsiCompatible);
    let mut generator = CredentialGenerator(0x0b5e_55ed_cafe_f00d);
    let mut identical = 0;
    for n in 0..60 {
        let credential = generator.credential(n);
        let options = ProofOptions {
            verification_method: format!(
                "https://example.edu/issuers/{n}#z6MkjZRZv3aez3r18pB1RBFJR1kwUVJ5jHt92JmQwXbd5hwi"
            ),
            created: generator.date().parse().unwrap(),
            proof_purpose: ProofPurpose::AssertionMethod,
            challenge: None,
            domain: None,
        };
        let signed = suite
            .sign(&credential, options, &key)
            .unwrap_or_else(|e| panic!("credential {n}: {e}\n{credential:#}"));
        suite.verify(&signed, &key.verifying_key()).unwrap();

        // Stock ssi departs from JSON-LD 1.1 only in typed booleans and numbers; with its
        // literal forms selected, the fast path must agree with it byte for byte.
        assert_eq!(
            ContextLoader::shared()
                .canonicalize_as(&credential, Profile::SsiCompatible)
                .unwrap(),
            stock_ssi::canonical_document(&credential),
            "credential {n}: canonical form differs from stock ssi:\n{credential:#}"
        );
        let expected = stock_ssi::sign_v2(&credential, &signed["proof"], &key);
        let ssi_signed = ssi_compatible
            .sign(&credential, options_of(&signed["proof"]), &key)
            .unwrap();
        assert_eq!(
            ssi_signed["proof"]["proofValue"], expected,
            "credential {n}: proofValue differs from stock ssi:\n{credential:#}"
        );
        // What ssi-based issuers sign is accepted by the (spec-mode) verifier.
        suite.verify(&ssi_signed, &key.verifying_key()).unwrap();
        if signed == ssi_signed {
            identical += 1;
        }
    }
    // Most generated credentials have no typed boolean or number: there the spec form and
    // the ssi form are the same document and the proofs are identical.
    assert!(identical >= 20, "only {identical} of 60 identical");
}

#[test]
fn indistinguishable_blank_nodes_match_stock_ssi() {
    // Identical blank nodes share a first-degree hash, which sends RDFC-1.0 through its
    // N-degree hashing; chains of them (evidence -> alignment) need its recursion too.
    let mut credential = without_proof(&vector_json("ob-v3p0-ldp/signed-credential.json"));
    let alignment =
        json!({"type": ["Alignment"], "targetName": "Same", "targetUrl": "https://example.org/s"});
    credential["credentialSubject"]["achievement"]["alignment"] =
        json!([alignment.clone(), alignment.clone(), alignment]);
    credential["evidence"] = json!([
        {"type": ["Evidence"], "name": "Twin"},
        {"type": ["Evidence"], "name": "Twin"},
        {"type": ["Evidence"], "name": "Other"}
    ]);
    credential["credentialSubject"]["result"] = json!([
        {"type": ["Result"], "value": "A"},
        {"type": ["Result"], "value": "A"}
    ]);
    assert_eq!(
        ContextLoader::shared().canonicalize(&credential).unwrap(),
        stock_ssi::canonical_document(&credential)
    );
    let key = ob_key();
    let signed = EddsaRdfc2022::default()
        .sign(
            &credential,
            options_of(&vector_json("ob-v3p0-ldp/signed-credential.json")["proof"]),
            &key,
        )
        .unwrap();
    assert_eq!(
        signed["proof"]["proofValue"],
        stock_ssi::sign_v2(&credential, &signed["proof"], &key)
    );
}

#[test]
fn lists_follow_the_spec() {
    let document = json!({
        "@context": [oxbadge::jsonld::CREDENTIALS_V2, oxbadge::jsonld::OB_V3P0_CONTEXT],
        "id": "urn:uuid:result-description-1",
        "type": ["ResultDescription"],
        "allowedValue": ["A", "B"]
    });
    let rdf = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
    let canonical = ContextLoader::shared().canonicalize(&document).unwrap();
    // Blank node labels depend on hashes; the statements of the collection do not.
    let lines: Vec<String> = canonical
        .lines()
        .map(|l| l.replace("_:c14n0", "_:x").replace("_:c14n1", "_:x"))
        .collect();
    assert_eq!(lines.len(), 6, "{canonical}");
    for expected in [
        format!("_:x <{rdf}first> \"A\" ."),
        format!("_:x <{rdf}first> \"B\" ."),
        format!("_:x <{rdf}rest> <{rdf}nil> ."),
        format!("_:x <{rdf}rest> _:x ."),
        "<urn:uuid:result-description-1> <https://purl.imsglobal.org/spec/vc/ob/vocab.html#allowedValue> _:x .".to_string(),
    ] {
        assert!(
            lines.contains(&expected),
            "missing {expected} in\n{canonical}"
        );
    }
}

/// Signing with stock `ssi` (its own eddsa-rdfc-2022 suite) over the same pinned contexts.
mod stock_ssi {
    use super::*;
    use iref::{IriBuf, UriBuf};
    use ssi::claims::SignatureEnvironment;
    use ssi::claims::data_integrity::suites::EdDsaRdfc2022 as SsiEdDsaRdfc2022;
    use ssi::claims::data_integrity::{CryptographicSuite, ProofOptions as SsiProofOptions};
    use ssi::verification_methods::{
        Multikey, ProofPurpose as SsiProofPurpose, ReferenceOrOwned, SingleSecretSigner,
    };
    use ssi::xsd::DateTimeStamp;

    pub fn loader() -> ssi::json_ld::ContextLoader {
        let ours = ContextLoader::shared();
        let map: HashMap<String, String> = ours
            .urls()
            .map(|url| (url.to_owned(), ours.document(url).unwrap().to_owned()))
            .collect();
        ssi::json_ld::ContextLoader::empty()
            .with_context_map_from(map)
            .unwrap()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn parts(
        proof: &Value,
        key: &SigningKey,
    ) -> (HashMap<IriBuf, Multikey>, SsiProofOptions<Multikey, ()>) {
        let vm = proof["verificationMethod"].as_str().unwrap();
        let controller = vm.split('#').next().unwrap();
        let method = Multikey::from_public_key(
            IriBuf::new(vm.to_owned()).unwrap(),
            UriBuf::new(controller.as_bytes().to_vec()).unwrap(),
            &key.verifying_key(),
        );
        let created: ssi::Lexical<DateTimeStamp> =
            proof["created"].as_str().unwrap().parse().unwrap();
        let options = SsiProofOptions::new(
            created,
            ReferenceOrOwned::Reference(IriBuf::new(vm.to_owned()).unwrap()),
            SsiProofPurpose::Assertion,
            (),
        );
        (
            HashMap::from([(IriBuf::new(vm.to_owned()).unwrap(), method)]),
            options,
        )
    }

    /// Canonical N-Quads stock ssi produces for a document (its `proof` left out).
    pub fn canonical_document(document: &Value) -> String {
        use ssi::json_ld::{CompactJsonLd, Expandable};
        use ssi::rdf::{AnyLdEnvironment, LdEnvironment};
        let mut document = document.clone();
        document.as_object_mut().unwrap().remove("proof");
        let compact = CompactJsonLd(ssi::json_ld::syntax::to_value(&document).unwrap());
        runtime().block_on(async {
            let mut ld = LdEnvironment::default();
            let expanded = compact.expand_with(&mut ld, &loader()).await.unwrap();
            ld.canonical_form_of(&expanded).unwrap().concat()
        })
    }

    /// proofValue stock ssi produces for a VC 2.0 document.
    pub fn sign_v2(credential: &Value, proof: &Value, key: &SigningKey) -> Value {
        let (resolver, options) = parts(proof, key);
        let credential: ssi::claims::vc::v2::JsonCredential =
            serde_json::from_value(credential.clone()).unwrap();
        let environment = SignatureEnvironment {
            json_ld_loader: loader(),
            eip712_loader: (),
        };
        let signed = runtime()
            .block_on(SsiEdDsaRdfc2022.sign_with(
                environment,
                credential,
                &resolver,
                SingleSecretSigner::new(key.clone()),
                options,
                (),
            ))
            .unwrap();
        serde_json::to_value(&signed).unwrap()["proof"]["proofValue"].clone()
    }

    /// proofValue stock ssi produces for a VC 1.1 document.
    pub fn sign_v1(credential: &Value, proof: &Value, key: &SigningKey) -> Value {
        let (resolver, options) = parts(proof, key);
        let credential: ssi::claims::vc::v1::JsonCredential =
            serde_json::from_value(credential.clone()).unwrap();
        let environment = SignatureEnvironment {
            json_ld_loader: loader(),
            eip712_loader: (),
        };
        let signed = runtime()
            .block_on(SsiEdDsaRdfc2022.sign_with(
                environment,
                credential,
                &resolver,
                SingleSecretSigner::new(key.clone()),
                options,
                (),
            ))
            .unwrap();
        serde_json::to_value(&signed).unwrap()["proof"]["proofValue"].clone()
    }
}
