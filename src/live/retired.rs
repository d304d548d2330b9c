//! Files netc used to render and no longer does, that do harm where they are: netc's old
//! complete filter tables `/etc/iptables/rules.v4` and `rules.v6`, which netfilter-persistent
//! restores without `--noflush` on start, restart and reload, deleting libvirt's and
//! CloudStack's chains. Apply removes such a file when netc generated it (its first line
//! says so), and puts it back on undo; a file the site wrote itself stays.

use std::io;
use std::path::Path;

use super::install::{read_text_opt, resolve_in};
use super::plan::{FileAction, FileChange, GENERATED, Plan};
use super::step::Step;
use crate::model::Family;
use crate::render::ArtefactKind;

/// Adds the removal of every retired file netc generated under `root` to `plan`.
pub fn plan(root: &Path, plan: &mut Plan) -> io::Result<()> {
    for (rel, family) in ArtefactKind::RETIRED.into_iter().zip(Family::ALL) {
        let path = root.join(rel);
        let Some(old) = read_text_opt(&resolve_in(root, &path)?)? else {
            continue;
        };
        if !old.starts_with(GENERATED) {
            continue;
        }
        let step = |content| Step::File {
            kind: ArtefactKind::rules(family),
            path: path.clone(),
            content,
        };
        plan.steps.push((step(None), step(Some(old.clone()))));
        plan.files.push(FileChange {
            path: format!("/{rel}"),
            action: FileAction::Remove,
        });
        plan.notes.push(format!(
            "/{rel} was netc's whole filter table, which netfilter-persistent restores without \
             --noflush (deleting libvirt's and CloudStack's chains): netc-firewall.service \
             loads netc's chains now"
        ));
    }
    Ok(())
}
