//! A statement text, run: its statements in order, each in its own [`StatementControl`] (a
//! slot, its timeout, the call's deadline), with the session's settings (which a `SET` in the
//! text changes), its sequence values, and the transaction each statement takes part in
//! ([`TransactionBlock`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::common::ScalarValue;
use futures::StreamExt;

use crate::coordinator::{Coordinator, StatementOutput, parse};
use crate::error::{Result, SchedulerError};
use crate::limits::statement_control::StatementControl;
use crate::session::sequence_functions;
use crate::session::statement_call::StatementCall;
use crate::session::transaction;
use crate::session::transaction_block::TransactionBlock;
use crate::statements::settings::SettingStatement;

impl Coordinator {
    /// Runs the statements of `sql` for `call` (see [`Coordinator::execute_call`]) on the
    /// current runtime; returns the last one's output.
    pub(crate) async fn execute_here(
        &self,
        call: &StatementCall,
        sql: &str,
        params: &[ScalarValue],
    ) -> Result<StatementOutput> {
        let parsing = Instant::now();
        let statements = match parse(sql) {
            Ok(statements) => statements,
            Err(e) => {
                // A statement that does not parse fails the session's transaction too.
                if let Some(transaction) = call.session.as_ref().and_then(|s| s.transaction()) {
                    transaction.fail(&e);
                }
                return Err(e);
            }
        };
        let parse_time = parsing.elapsed();
        let count = statements.len();
        if !params.is_empty() && count != 1 {
            return Err(SchedulerError::invalid(format!(
                "parameters bind to one statement, and the text holds {count}"
            )));
        }
        let cluster = self.cluster();
        let defaults = cluster.default_settings();
        let mut settings = call
            .session
            .as_ref()
            .map(|session| session.settings())
            .unwrap_or_default();
        // As in PostgreSQL, the text runs as one implicit transaction for its settings: what
        // it SETs applies to the statements after, and reaches the session only if the whole
        // text succeeds.
        let mut changed_settings = false;
        let mut last = None;
        // `currval` and `lastval` read the client session's sequence values; a text run
        // outside a session is a session of its own.
        let sequences = call
            .session
            .as_ref()
            .map_or_else(Arc::default, |session| Arc::clone(&session.sequences));
        let idle_limit = settings.over(&defaults).idle_in_transaction_timeout();
        let mut block = TransactionBlock::start(cluster, call, count, idle_limit);
        for (i, statement) in statements.into_iter().enumerate() {
            let is_last = i + 1 == count;
            if let Some(controlled) = block.control(&statement, &settings).await? {
                if let Some(restore) = controlled.restore {
                    settings = restore;
                    changed_settings = true;
                    block.idle_limit = settings.over(&defaults).idle_in_transaction_timeout();
                }
                if is_last {
                    last = Some(controlled.output);
                }
                continue;
            }
            if let Some(setting) = SettingStatement::of(&statement) {
                block.check_usable()?;
                let output = setting.apply(&mut settings, &defaults)?;
                changed_settings |= setting.changes();
                block.idle_limit = settings.over(&defaults).idle_in_transaction_timeout();
                if is_last {
                    last = Some(output);
                }
                continue;
            }
            let in_transaction = block.for_statement(&statement).await?;
            let explicit = in_transaction.clone().filter(|t| t.is_explicit());
            // The text is parsed once for all its statements; the first one is charged.
            let parse_time = if i == 0 { parse_time } else { Duration::ZERO };
            let effective = settings.over(&defaults);
            let control = StatementControl::new(&effective, call.timeout, cluster.admission());
            let run = control.run(transaction::within(
                in_transaction,
                sequence_functions::in_session(
                    Arc::clone(&sequences),
                    // Boxed: the statement's future is large, and this one holds it.
                    Box::pin(self.execute_parsed(
                        &call.principal,
                        statement,
                        parse_time,
                        params,
                        (&control, &effective),
                    )),
                ),
            ));
            let mut output = match run.await {
                Ok(output) => output,
                Err(e) => {
                    block.failed(&e);
                    return Err(e);
                }
            };
            if let StatementOutput::Query {
                control: slot,
                transaction,
                ..
            } = &mut output
            {
                *slot = Some(Box::new(control));
                *transaction = explicit;
            }
            // Queries before the last statement run to their end (they may call `nextval`
            // or `setval`, as in PostgreSQL); their rows are dropped.
            if is_last {
                // An implicit transaction's last query runs before it commits, so that its
                // failure discards the writes before it (its rows are kept until then).
                if block.implicit_writes()
                    && let StatementOutput::Query { .. } = output
                {
                    output = match collect(output).await {
                        Ok(rows) => rows,
                        Err(e) => {
                            block.failed(&e);
                            return Err(e);
                        }
                    };
                }
                last = Some(output);
            } else if let StatementOutput::Query { .. } = output
                && let Err(e) = drain(output).await
            {
                block.failed(&e);
                return Err(e);
            }
        }
        block.finish().await?;
        if changed_settings && let Some(session) = &call.session {
            session.update(|own| {
                *own = settings;
                Ok(())
            })?;
        }
        last.ok_or_else(|| SchedulerError::Syntax {
            message: "empty statement: nothing to run".into(),
        })
    }
}

/// Runs a query to its end, keeping its rows.
async fn collect(output: StatementOutput) -> Result<StatementOutput> {
    let mut rows = output.into_stream()?;
    let schema = rows.schema();
    let mut batches = Vec::new();
    while let Some(batch) = rows.next().await.transpose()? {
        batches.push(batch);
    }
    Ok(StatementOutput::Rows { schema, batches })
}

/// Runs a query to its end, dropping its rows.
async fn drain(output: StatementOutput) -> Result<()> {
    let mut rows = output.into_stream()?;
    while rows.next().await.transpose()?.is_some() {}
    Ok(())
}
