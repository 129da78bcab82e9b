"""THREAD algorithms of RFC 5256 on hand-made message sets."""
from posthouse.imap.threading import ThreadMessage, ordered_subject, references, render


def m(n, date, subject="s", mid="", irt="", refs=""):
    return ThreadMessage(n, date, subject, mid, irt, refs)


def test_references_chain_and_branches():
    msgs = [m(1, 1, "a", "<1@x>"), m(2, 2, "Re: a", "<2@x>", refs="<1@x>"),
            m(3, 3, "Re: a", "<3@x>", refs="<1@x>"), m(4, 4, "Re: a", "<4@x>", refs="<1@x> <2@x>")]
    assert render(references(msgs)) == "(1 (2 4)(3))"


def test_missing_parent_becomes_a_dummy_root_only_with_two_children():
    msgs = [m(1, 1, "x", "<1@x>", refs="<0@x>"), m(2, 2, "y", "<2@x>", refs="<0@x>")]
    assert render(references(msgs)) == "((1)(2))"
    assert render(references(msgs[:1])) == "(1)"


def test_reference_loops_are_refused():
    msgs = [m(1, 3, "a", "<a@b>"), m(2, 1, "b", "<b@b>", refs="<a@b> <c@b>"),
            m(3, 2, "c", "<c@b>", refs="<b@b>")]
    assert render(references(msgs)) == "(3 2)(1)"


def test_duplicate_and_missing_message_ids_are_threads_of_their_own():
    msgs = [m(1, 1, "p", "<d@x>"), m(2, 2, "q", "<d@x>"), m(3, 3, "r")]
    assert render(references(msgs)) == "(1)(2)(3)"


def test_roots_with_one_base_subject_merge():
    msgs = [m(1, 1, "Hello", "<1@x>"), m(2, 2, "Re: hello", "<2@x>"), m(3, 3, "other", "<3@x>")]
    assert render(references(msgs)) == "(1 2)(3)"
    msgs = [m(1, 1, "Hello", "<1@x>"), m(2, 2, "hello", "<2@x>")]
    assert render(references(msgs)) == "((1)(2))"


def test_ordered_subject():
    msgs = [m(1, 5, "b"), m(2, 1, "a"), m(3, 2, "Re: a"), m(4, 3, "A"), m(5, 4, "c")]
    assert render(ordered_subject(msgs)) == "(2 (3)(4))(5)(1)"
    assert render(ordered_subject([])) == ""
