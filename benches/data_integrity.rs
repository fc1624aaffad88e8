//! eddsa-rdfc-2022 signing and verification of Open Badges 3.0 credentials: oxbadge's fast path
//! against stock `ssi` 0.16 in the same run, so the ratio can be read off directly.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use iref::{IriBuf, UriBuf};
use oxbadge::di::{EddsaRdfc2022, ProofOptions, ProofPurpose};
use oxbadge::jsonld::ContextLoader;
use serde_json::{Value, json};
use ssi::claims::data_integrity::suites::EdDsaRdfc2022 as SsiEdDsaRdfc2022;
use ssi::claims::data_integrity::{CryptographicSuite, ProofOptions as SsiProofOptions};
use ssi::claims::{SignatureEnvironment, VerificationParameters};
use ssi::verification_methods::{
    Multikey, ProofPurpose as SsiProofPurpose, ReferenceOrOwned, SingleSecretSigner,
};

const VECTOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/vectors/ob-v3p0-ldp/signed-credential.json"
);
const VERIFICATION_METHOD: &str =
    "https://example.edu/issuers/565049#z6MkjZRZv3aez3r18pB1RBFJR1kwUVJ5jHt92JmQwXbd5hwi";

/// The OB 3.0 implementation guide's example credential, without its proof.
fn typical_credential() -> Value {
    let mut credential: Value =
        serde_json::from_str(&std::fs::read_to_string(VECTOR).unwrap()).unwrap();
    credential.as_object_mut().unwrap().remove("proof");
    credential
}

/// A fuller credential: e-mail recipient, alignments, result, evidence, status and schema.
fn rich_credential() -> Value {
    let mut credential = typical_credential();
    credential["@context"]
        .as_array_mut()
        .unwrap()
        .push(oxbadge::jsonld::OB_V3P0_EXTENSIONS.into());
    credential["credentialSubject"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    credential["credentialSubject"]["identifier"] = json!([{
        "type": "IdentityObject", "identityType": "emailAddress", "hashed": true, "salt": "Kosher",
        "identityHash": "sha256$b5809d8a92f8858436d7e6b87c12ebc0ae1eac4baecc2c0b913aee2c922ef399"
    }]);
    credential["credentialSubject"]["result"] =
        json!([{"type": ["Result"], "value": "A", "status": "Completed"}]);
    credential["credentialSubject"]["achievement"]["alignment"] = json!([
        {"type": ["Alignment"], "targetName": "Collaboration", "targetUrl": "https://example.org/skills/1"},
        {"type": ["Alignment"], "targetName": "Communication", "targetUrl": "https://example.org/skills/2"}
    ]);
    credential["credentialSubject"]["achievement"]["image"] = json!({"id": "https://example.com/badges/teamwork.png", "type": "Image", "caption": "Teamwork"});
    credential["evidence"] =
        json!([{"type": ["Evidence"], "name": "Project", "narrative": "Led the team."}]);
    credential["credentialStatus"] =
        json!({"id": "https://example.edu/revocations/565049", "type": "1EdTechRevocationList"});
    credential["credentialSchema"] = json!([{
        "id": "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json",
        "type": "1EdTechJsonSchemaValidator2019"
    }]);
    credential
}

fn key() -> SigningKey {
    let seed =
        hex::decode("6241a409e6707bb640a0140a8a32bc3d193c33a661747284d6adfa4ed4180be4").unwrap();
    SigningKey::from_bytes(&seed.try_into().unwrap())
}

fn options() -> ProofOptions {
    ProofOptions {
        verification_method: VERIFICATION_METHOD.to_owned(),
        created: "2010-01-01T19:23:24Z".parse().unwrap(),
        proof_purpose: ProofPurpose::AssertionMethod,
        challenge: None,
        domain: None,
    }
}

/// Stock ssi with the same pinned contexts, resolver and key.
struct StockSsi {
    runtime: tokio::runtime::Runtime,
    loader: ssi::json_ld::ContextLoader,
    resolver: HashMap<IriBuf, Multikey>,
    key: SigningKey,
}

impl StockSsi {
    fn new(key: &SigningKey) -> Self {
        let ours = ContextLoader::shared();
        let map: HashMap<String, String> = ours
            .urls()
            .map(|url| (url.to_owned(), ours.document(url).unwrap().to_owned()))
            .collect();
        let method = Multikey::from_public_key(
            IriBuf::new(VERIFICATION_METHOD.to_owned()).unwrap(),
            UriBuf::new(b"https://example.edu/issuers/565049".to_vec()).unwrap(),
            &key.verifying_key(),
        );
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            loader: ssi::json_ld::ContextLoader::empty()
                .with_context_map_from(map)
                .unwrap(),
            resolver: HashMap::from([(
                IriBuf::new(VERIFICATION_METHOD.to_owned()).unwrap(),
                method,
            )]),
            key: key.clone(),
        }
    }

    fn sign(
        &self,
        credential: ssi::claims::vc::v2::JsonCredential,
    ) -> ssi::claims::data_integrity::DataIntegrity<
        ssi::claims::vc::v2::JsonCredential,
        SsiEdDsaRdfc2022,
    > {
        let options = SsiProofOptions::new(
            "2010-01-01T19:23:24Z".parse().unwrap(),
            ReferenceOrOwned::Reference(IriBuf::new(VERIFICATION_METHOD.to_owned()).unwrap()),
            SsiProofPurpose::Assertion,
            (),
        );
        self.runtime
            .block_on(SsiEdDsaRdfc2022.sign_with(
                SignatureEnvironment {
                    json_ld_loader: &self.loader,
                    eip712_loader: (),
                },
                credential,
                &self.resolver,
                SingleSecretSigner::new(self.key.clone()),
                options,
                (),
            ))
            .unwrap()
    }
}

fn bench_credential(c: &mut Criterion, name: &str, credential: Value) {
    let key = key();
    let suite = EddsaRdfc2022::default();
    let stock = StockSsi::new(&key);

    // Both sides must sign the same bytes before their speed means anything.
    let ours = suite.sign(&credential, options(), &key).unwrap();
    let theirs = stock.sign(serde_json::from_value(credential.clone()).unwrap());
    let theirs_json = serde_json::to_value(&theirs).unwrap();
    // Stock ssi departs from the spec for typed booleans (OB `hashed`), so compare in its profile.
    let ssi_profile = suite
        .clone()
        .with_profile(oxbadge::jsonld::Profile::SsiCompatible)
        .sign(&credential, options(), &key)
        .unwrap();
    assert_eq!(
        ssi_profile["proof"]["proofValue"], theirs_json["proof"]["proofValue"],
        "{name}: the fast path must sign the same bytes as stock ssi"
    );
    suite.verify(&ours, &key.verifying_key()).unwrap();

    let mut group = c.benchmark_group(format!("eddsa-rdfc-2022/{name}"));
    group.bench_function("sign/fast", |b| {
        b.iter(|| suite.sign(black_box(&credential), options(), &key).unwrap())
    });
    group.bench_function("sign/stock-ssi", |b| {
        b.iter_batched(
            || serde_json::from_value(credential.clone()).unwrap(),
            |vc| stock.sign(black_box(vc)),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("verify/fast", |b| {
        b.iter(|| {
            suite
                .verify(black_box(&ours), &key.verifying_key())
                .unwrap()
        })
    });
    let params =
        VerificationParameters::from_resolver(&stock.resolver).with_json_ld_loader(&stock.loader);
    group.bench_function("verify/stock-ssi", |b| {
        b.iter(|| {
            stock
                .runtime
                .block_on(black_box(&theirs).verify(&params))
                .unwrap()
                .unwrap()
        })
    });
    group.finish();
}

fn data_integrity(c: &mut Criterion) {
    bench_credential(c, "ob-example", typical_credential());
    bench_credential(c, "ob-rich", rich_credential());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = data_integrity
}
criterion_main!(benches);
