//! The sea-orm models of the people side (tables from migration `m20261201_000001_accounts`).

/// `users`: one row per person.
pub mod user {
    use sea_orm::entity::prelude::*;

    /// A user. `password_hash` is an Argon2id PHC string; nothing else about the password is kept.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Normalized (trimmed, lower-case) and unique.
        pub email: String,
        pub display_name: String,
        pub password_hash: String,
        /// Global administrator (sees and manages every issuer).
        pub is_admin: bool,
        pub email_verified_at: Option<DateTimeUtc>,
        pub disabled_at: Option<DateTimeUtc>,
        /// Failed sign-ins in a row (reset by a success or a password reset).
        pub failed_sign_ins: i32,
        pub locked_until: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl std::fmt::Display for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "user {}", self.id)
        }
    }
}

/// `user_sessions`: server-side sessions; the cookie value is stored only as its SHA-256.
pub mod session {
    use sea_orm::entity::prelude::*;

    /// A signed-in session.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_sessions")]
    pub struct Model {
        /// Public id (shown in the session list, used to end a session); not the cookie value.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Hex SHA-256 of the cookie value.
        pub secret_hash: String,
        pub user_id: String,
        pub created_at: DateTimeUtc,
        /// When the password was last checked in this session.
        pub authenticated_at: DateTimeUtc,
        pub last_seen_at: DateTimeUtc,
        /// Absolute end of the session.
        pub expires_at: DateTimeUtc,
        pub user_agent: Option<String>,
        pub ip_address: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `user_tokens`: single-use links (email verification, password reset), stored as SHA-256.
pub mod link {
    use sea_orm::entity::prelude::*;

    /// A single-use link token.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        /// `verify_email` or `reset_password`.
        pub purpose: String,
        /// Hex SHA-256 of the token.
        pub token_hash: String,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
