"""The safe-response policy of one category, resolved: statute and contact ids expanded.

Used by ``koalign policy show``, by the respond stage (the policy system prompt) and by judges.
"""

from __future__ import annotations

from typing import Any

from koalign.locale import Locale
from koalign.locale_schema import Article, Contact, Law


def article_view(law: Law, article: Article | None) -> dict[str, Any]:
    """A statute as policy data: law id, official name and aliases, plus (for an article) its
    number, title, summary, penalty, effective date (ISO), status and confidence."""
    view: dict[str, Any] = {"law_id": law.id, "law": law.name, "aliases": law.aliases}
    if article is not None:
        view.update(
            article=article.article,
            title=article.title,
            summary=article.summary,
            penalty=article.penalty,
            effective=article.effective.isoformat() if article.effective else None,
            status=article.status,
            confidence=article.confidence,
        )
    return view


def contact_view(contact: Contact) -> dict[str, Any]:
    """A contact as policy data: id, name, number, url, purpose, hours, status and confidence."""
    return {
        "id": contact.id,
        "name": contact.name,
        "number": contact.number,
        "url": contact.url,
        "purpose": contact.purpose,
        "hours": contact.hours,
        "status": contact.status,
        "confidence": contact.confidence,
    }


def resolved_policy(
    loc: Locale, category_id: str, *, view: str = "full", few_shot: int | None = None
) -> dict[str, Any]:
    """The category's policy with every reference expanded (the locale is already cross-checked).

    The result is shared and frozen (see :func:`koalign.prompts.freeze`): do not modify it.
    ``view="compact"`` keeps what a small context window can hold: the first items of each list
    (principles, cases, norms, kernel, procedures, do/don't), statutes by name, article and
    title only, groups with one protection, contacts by name and number. ``few_shot`` keeps
    that many worked examples (default: all for ``full``, none for ``compact``).
    """
    key = (str(loc.path), loc.digest, category_id, view, few_shot)
    hit = _VIEWS.get(key)
    if hit is None:
        if len(_VIEWS) > 512:
            _VIEWS.clear()
        from koalign.prompts import freeze

        hit = _VIEWS[key] = freeze(_view(loc, category_id, view, few_shot))
    return hit


_VIEWS: dict[tuple[Any, ...], dict[str, Any]] = {}


def _view(loc: Locale, category_id: str, view: str, few_shot: int | None) -> dict[str, Any]:
    full = _resolved(loc, category_id)
    if few_shot is None:
        few_shot = len(full["examples"]) if view == "full" else 0
    if view == "full":
        return full | {"examples": full["examples"][:few_shot]}
    keep = ("law_id", "law", "article", "title", "ref", "why")
    return full | {
        "principles": full["principles"][:3],
        "applies_when": full["applies_when"][:2],
        "does_not_apply": full["does_not_apply"][:2],
        "p1_statutes": [{k: s.get(k) for k in keep} for s in full["p1_statutes"][:4]],
        "p1_norms": full["p1_norms"][:1],
        "p2_populations": [
            p | {"protections": p["protections"][:1], "statutes": []}
            for p in full["p2_populations"][:3]
        ],
        "p3_kernel": full["p3_kernel"][:2],
        "p3_contacts": [c | {"url": None, "hours": None} for c in full["p3_contacts"][:3]],
        "p3_procedures": full["p3_procedures"][:2],
        "do": full["do"][:3],
        "dont": full["dont"][:3],
        "examples": full["examples"][:few_shot],
    }


_CACHE: dict[tuple[str, str, str], dict[str, Any]] = {}


def _resolved(loc: Locale, category_id: str) -> dict[str, Any]:
    """Resolved once per (pack path, pack digest, category): prompts render it per record."""
    key = (str(loc.path), loc.digest, category_id)
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        hit = _CACHE[key] = _resolved_uncached(loc, category_id)
    return dict(hit)


def _resolved_uncached(loc: Locale, category_id: str) -> dict[str, Any]:
    category = loc.taxonomy.category(category_id)
    domain = loc.taxonomy.domain_of(category_id)
    cp = loc.policy.policies[category_id]
    statutes = []
    for s in cp.p1_statutes:
        law, article = loc.resolve_ref(s.ref)
        statutes.append({"ref": s.ref, "why": s.why, **article_view(law, article)})
    populations = []
    for pop in cp.p2_populations:
        refs = [article_view(*loc.resolve_ref(r)) | {"ref": r} for r in pop.refs]
        populations.append({"group": pop.group, "protections": pop.protections, "statutes": refs})
    contacts = []
    for contact_id in cp.p3_contacts:
        contact = loc.contacts.contact(contact_id)
        assert contact is not None  # guaranteed by cross_check
        contacts.append(contact_view(contact))
    return {
        "category": category.id,
        "name_ko": category.name_ko,
        "name_en": category.name_en,
        "domain": {"id": domain.id, "name_ko": domain.name_ko, "name_en": domain.name_en},
        "principles": cp.principles,
        "applies_when": cp.applies_when,
        "does_not_apply": cp.does_not_apply,
        "benign_prompts": cp.benign_prompts,
        "p1_statutes": statutes,
        "p1_norms": cp.p1_norms,
        "p2_populations": populations,
        "p3_kernel": cp.p3_kernel,
        "p3_contacts": contacts,
        "p3_procedures": cp.p3_procedures,
        "do": cp.do,
        "dont": cp.dont,
        "examples": [e.model_dump() for e in cp.examples],
    }
