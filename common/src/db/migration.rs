//! Schema migrations (sea-orm-migration). The worker applies them at start; concurrent
//! starters serialise on an advisory lock so only one migrates.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use sea_orm_migration::prelude::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Initial),
            Box::new(M0002Groups),
            Box::new(M0003Directory),
            Box::new(M0004Integrations),
            Box::new(M0005Deadlines),
            Box::new(M0006Sso),
            Box::new(M0007Lifecycle),
            Box::new(M0008ProvisioningLog),
            Box::new(M0009DeprovisionGuard),
            Box::new(M0010OrgChart),
            Box::new(M0011TokenChanges),
        ]
    }
}

/// Applies pending migrations, holding an advisory lock for the duration.
pub async fn migrate(url: &str) -> Result<(), DbErr> {
    // One dedicated connection, so the session-level lock and the migration share it.
    let db: DatabaseConnection = super::connect(url, 1).await;
    db.execute_unprepared("SELECT pg_advisory_lock(7262810513)")
        .await?;
    let result = Migrator::up(&db, None).await;
    let unlock = db
        .execute_unprepared("SELECT pg_advisory_unlock(7262810513)")
        .await;
    let _ = db.close().await;
    result?;
    unlock.map(|_| ())
}

struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0001_initial.sql"))
            .await?;
        Ok(())
    }
}

struct M0002Groups;

impl MigrationName for M0002Groups {
    fn name(&self) -> &str {
        "m0002_groups"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002Groups {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0002_groups.sql"))
            .await?;
        Ok(())
    }
}

struct M0003Directory;

impl MigrationName for M0003Directory {
    fn name(&self) -> &str {
        "m0003_directory"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0003Directory {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0003_directory.sql"))
            .await?;
        Ok(())
    }
}

struct M0004Integrations;

impl MigrationName for M0004Integrations {
    fn name(&self) -> &str {
        "m0004_integrations"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0004Integrations {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0004_integrations.sql"))
            .await?;
        Ok(())
    }
}

struct M0005Deadlines;

impl MigrationName for M0005Deadlines {
    fn name(&self) -> &str {
        "m0005_deadlines"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0005Deadlines {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0005_deadlines.sql"))
            .await?;
        Ok(())
    }
}

struct M0006Sso;

impl MigrationName for M0006Sso {
    fn name(&self) -> &str {
        "m0006_sso"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0006Sso {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0006_sso.sql"))
            .await?;
        Ok(())
    }
}

struct M0007Lifecycle;

impl MigrationName for M0007Lifecycle {
    fn name(&self) -> &str {
        "m0007_lifecycle"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0007Lifecycle {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0007_lifecycle.sql"))
            .await?;
        Ok(())
    }
}

struct M0008ProvisioningLog;

impl MigrationName for M0008ProvisioningLog {
    fn name(&self) -> &str {
        "m0008_provisioning_log"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0008ProvisioningLog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0008_provisioning_log.sql"))
            .await?;
        Ok(())
    }
}

struct M0009DeprovisionGuard;

impl MigrationName for M0009DeprovisionGuard {
    fn name(&self) -> &str {
        "m0009_deprovision_guard"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0009DeprovisionGuard {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0009_deprovision_guard.sql"))
            .await?;
        Ok(())
    }
}

struct M0010OrgChart;

impl MigrationName for M0010OrgChart {
    fn name(&self) -> &str {
        "m0010_org_chart"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0010OrgChart {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0010_org_chart.sql"))
            .await?;
        Ok(())
    }
}

struct M0011TokenChanges;

impl MigrationName for M0011TokenChanges {
    fn name(&self) -> &str {
        "m0011_token_changes"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0011TokenChanges {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(include_str!("m0011_token_changes.sql"))
            .await?;
        Ok(())
    }
}
