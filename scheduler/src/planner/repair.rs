//! Restoring, after a stage was cut, what DataFusion's plan relied on: co-partitioned join
//! inputs, single-partition build sides, sorted inputs, and the order the stage promised.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::{LexOrdering, OrderingRequirements, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{
    Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning,
};

/// Restores what nodes require of their inputs' partitioning where a cut changed it (a
/// shuffle read has its own partition count, and DataFusion may have left out an exchange
/// because an input was already partitioned its way): an input that must be one partition (a
/// collected build side) is merged; the inputs of a two-input node that need co-partitioned
/// inputs (partitioned joins) are hash-partitioned by their keys into `partitions`.
pub(super) fn repair_copartitioning(
    plan: Arc<dyn ExecutionPlan>,
    partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let children = node.children();
        let requirements = node.input_distribution_requirements().into_per_child();
        // An input that must be one partition (a collected build side) and no longer is.
        let must_merge = |child: &Arc<dyn ExecutionPlan>, requirement: &Distribution| {
            matches!(requirement, Distribution::SinglePartition)
                && child.output_partitioning().partition_count() > 1
        };
        if children.len() == requirements.len()
            && children
                .iter()
                .zip(&requirements)
                .any(|(child, requirement)| must_merge(child, requirement))
        {
            let repaired = children
                .iter()
                .zip(&requirements)
                .map(|(child, requirement)| {
                    if must_merge(child, requirement) {
                        Arc::new(CoalescePartitionsExec::new(Arc::clone(child)))
                            as Arc<dyn ExecutionPlan>
                    } else {
                        Arc::clone(child)
                    }
                })
                .collect();
            return Ok(Transformed::yes(replace_children_if_necessary(
                Arc::clone(&node),
                repaired,
            )?));
        }
        if children.len() != 2 || requirements.len() != 2 {
            return Ok(Transformed::no(node));
        }
        let keys: Vec<Vec<Arc<dyn PhysicalExpr>>> = requirements
            .iter()
            .filter_map(|r| match r {
                Distribution::KeyPartitioned(keys) => Some(keys.clone()),
                _ => None,
            })
            .collect();
        if keys.len() != 2 {
            return Ok(Transformed::no(node));
        }
        let counts: Vec<usize> = children
            .iter()
            .map(|c| c.output_partitioning().partition_count())
            .collect();
        let hashed = children
            .iter()
            .all(|c| matches!(c.output_partitioning(), Partitioning::Hash(_, _)));
        if hashed && counts[0] == counts[1] {
            return Ok(Transformed::no(node));
        }
        let mut repaired = Vec::with_capacity(2);
        for (child, keys) in children.into_iter().zip(keys) {
            repaired.push(Arc::new(RepartitionExec::try_new(
                Arc::clone(child),
                Partitioning::Hash(keys, partitions.max(1)),
            )?) as Arc<dyn ExecutionPlan>);
        }
        Ok(Transformed::yes(replace_children_if_necessary(
            Arc::clone(&node),
            repaired,
        )?))
    })
    .map(|t| t.data)
}

/// Sorts, per partition, every input that a node needs sorted and that a cut left unsorted:
/// DataFusion may have sorted below a join side (the join keeps its probe side's order), and
/// a shuffle read of that side arrives in no order.
pub(super) fn repair_orderings(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let children = node.children();
        let requirements = node.required_input_ordering();
        if children.len() != requirements.len() {
            return Ok(Transformed::no(node));
        }
        let mut changed = false;
        let mut repaired = Vec::with_capacity(children.len());
        for (child, requirement) in children.into_iter().zip(requirements) {
            let Some(OrderingRequirements::Hard(alternatives)) = requirement else {
                repaired.push(Arc::clone(child));
                continue;
            };
            let satisfied = alternatives.iter().any(|r| {
                child
                    .equivalence_properties()
                    .ordering_satisfy_requirement(r.clone())
                    .unwrap_or(false)
            });
            match alternatives.into_iter().next() {
                Some(first) if !satisfied => {
                    changed = true;
                    repaired.push(Arc::new(
                        SortExec::new(LexOrdering::from(first), Arc::clone(child))
                            .with_preserve_partitioning(true),
                    ) as Arc<dyn ExecutionPlan>);
                }
                _ => repaired.push(Arc::clone(child)),
            }
        }
        if !changed {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(replace_children_if_necessary(
            Arc::clone(&node),
            repaired,
        )?))
    })
    .map(|t| t.data)
}

/// `fragment` sorted per partition by `ordering` unless it already is: what a stage promised
/// its parent (a merge of sorted streams) must hold after cuts.
pub(super) fn keeping_order(
    fragment: Arc<dyn ExecutionPlan>,
    ordering: Option<&LexOrdering>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(ordering) = ordering else {
        return Ok(fragment);
    };
    if fragment
        .equivalence_properties()
        .ordering_satisfy(ordering.clone())?
    {
        return Ok(fragment);
    }
    Ok(Arc::new(
        SortExec::new(ordering.clone(), fragment).with_preserve_partitioning(true),
    ))
}
