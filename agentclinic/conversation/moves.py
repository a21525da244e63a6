"""Recognising what a learner does in one utterance: the conversation MOVES, in context.

Each sentence of the utterance is read by rules (phrases a move is made of) and by the shared sentence
embeddings (similarity to a few written examples of each move; a move needs a clear match, and rules
win where both speak). Context decides the rest: delivering an item of the station's information is
recognised from its keywords and its plain version; delivering bad news with no warning shot, no question
about what the person knows and no invitation first is ``blunt-news``; a medical word with no explanation
in the same turn is ``jargon``, with one it is ``plain-language``.

The recogniser is deterministic: the same utterance in the same context gives the same moves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agentclinic.agents.embeddings import Embedder
from agentclinic.scenario.schema import MOVES, Scenario

# Phrases a move is made of (lower-case text, apostrophes normalised). Order does not matter.
RULES: dict[str, tuple[str, ...]] = {
    "introduction": (r"\b(my name is|i'm dr\b|i am dr\b|i'm doctor|i am doctor|i'm one of the|i am one of the|"
                     r"i'm the (registrar|doctor|consultant|nurse|resident)|i'm (your|the) doctor)",),
    "check-setting": (r"\b(is (it|this) (ok|okay|all right|alright) (if|to)|somewhere (quiet|private)|"
                      r"(would|do) you (like|want) (anyone|someone|somebody) (here|with you|to be here|to join)|"
                      r"is (now|this) a good time|are you comfortable|shall we sit|can we sit|private room|"
                      r"(anyone|someone) (you'd|you would) like (here|with you))",),
    "ask-perception": (r"\b(what do you (know|understand)|what have you been told|what (has|have) (anyone|they|the "
                       r"doctors?) (told|said)|what do you think (is|might be) (going on|happening|wrong)|"
                       r"what('s| is| are) your understanding|what are you expecting|how much do you know|"
                       r"what did you think the (scan|test|result)|what('s| has) been going through your mind about)",),
    "ask-invitation": (r"\b(how much (detail|information) would you like|would you like me to (go through|explain|tell)|"
                       r"how would you like me to|do you want me to (go through|explain|tell you)|"
                       r"are you (ok|okay|happy|ready) for me to (go through|explain|tell|talk)|"
                       r"shall i (go through|explain|tell you)|would you like (to know|the details|me to go on)|"
                       r"some people like to know|is it ok(ay)? (if|for) (i|me) (go through|explain|tell))",),
    "warning-shot": (r"\b(i'?m afraid|i am afraid|not the (news|result) (we|you) (were )?(hoping|wanted)|"
                     r"i have (some )?(difficult|bad|serious|worrying) news|i'm sorry to (have to )?tell you|"
                     r"i am sorry to (have to )?tell you|the results? (is|are) (more )?(serious|worrying) than|"
                     r"this is (difficult|hard) news|it's not (good|the) news|it isn't good news|"
                     r"brace yourself|(more )?serious than we (hoped|thought))",),
    "silence": (r"^\s*(\.{3,}|…|\(?\s*(pause[sd]?|silence|waits?|says nothing|stays quiet)\s*\)?|\[.*(pause|silence|"
                r"wait).*\]|\*.*(pause|silence|wait).*\*|take your time\.?|there's no rush\.?|no rush\.?)\s*$",),
    "naming-emotion": (r"\b(you (seem|look|sound) (\w+ ){0,2}(upset|worried|scared|frightened|shocked|angry|"
                       r"overwhelmed|sad|anxious|distressed|frustrated|numb|lost|stunned|devastated)|"
                       r"i can see (this|that|you're|you are) (\w+ ){0,3}(upset|shock|hard|difficult|worried|"
                       r"frightened|angry|a lot|overwhelming)|this (is|must be) a (big |huge |terrible )?shock|"
                       r"you're (really )?(worried|frightened|scared|angry|upset) about)",),
    "understanding-statement": (r"\b(i can (understand|imagine) (why|how|that)|it's understandable|it is understandable|"
                                r"(that's|that is|it's) (completely |totally |entirely )?(natural|normal|understandable) to "
                                r"(feel|be)|anyone would (feel|be)|makes sense (that|you) (you )?(feel|are|'re))",),
    "respect-statement": (r"\b(you've (been|done) (so |really )?(well|brave|strong|amazing)|you have (been|done) (so )?"
                          r"(well|brave)|i (really )?(admire|respect)|you've coped|you have coped|it took (real )?"
                          r"courage|thank you for (telling|sharing|being (so )?honest|asking)|that's a (really )?good "
                          r"question|you (were|are) right to (come|ask|worry)|you've looked after)",),
    "support-statement": (r"\b(we('ll| will) (be|go through|face|work (through|on)) (this|it)? ?(with you|together)|"
                          r"you (won't|will not) (be|go through (this|it)) alone|i('ll| will) (be here|make sure you|"
                          r"help you|support)|we('re| are) (here|going to be here) (for|to help) you|whatever (you "
                          r"decide|happens),? we|we will support|we'll support|we('ll| will) help|you('ll| will) have "
                          r"(a|your own) (nurse|key worker)|(nurse|key worker|team) (will|who will|can) (be|support|"
                          r"help|come|see))",),
    "explore-emotion": (r"\b(how (are|do) you feeling|how do you feel|how are you (doing|coping) with|"
                        r"what('s| is) (going through|on) your mind|what (worries|frightens|scares|upsets) you (most)?|"
                        r"tell me (more )?(about )?(how|what) you('re| are) feeling|what are you feeling|"
                        r"can you tell me (more )?about (that|what you mean|jean|your worry|how)|"
                        r"what (do you mean|makes you say)|what's (worrying|upsetting|frightening) you|"
                        r"you said .{1,60}(tell me|can you say) more)",),
    "empathy-statement": (r"\b(i('m| am) (so |really |very )?sorry(?! to (have to )?tell)|this must be (so |really |very )?"
                          r"(hard|difficult|awful|frightening|scary|a lot)|that must be (so |really |very )?(hard|"
                          r"difficult|awful|frightening|scary)|i wish (i|we) had (better|different) news|i hear you|"
                          r"i understand(?! (that )?the)|i can see how much)",),
    "open-question": (r"^(what|how|in what way|what else)\b.*\?", r"^(tell me|can you tell me|could you tell me|"
                      r"talk me through|describe)\b",),
    "closed-question": (r"^(do|does|did|is|are|was|were|have|has|had|can|could|will|would|should|any|shall)\b.*\?\s*$",),
    "ask-concerns": (r"\b(what (worries|concerns|frightens|scares) you|(is there )?anything (else )?(that('s| is) )?"
                     r"(worrying|bothering|concerning|troubling) you|what are you (most )?(worried|concerned|"
                     r"frightened|scared) about|what('s| is) (your|the) (biggest |main )?(worry|concern|fear)|"
                     r"do you have any (worries|concerns)|any (worries|concerns)|what matters "
                     r"(most )?to you|is there anything (else )?you('d| would) like to (ask|know)|what questions)",),
    "false-reassurance": (r"\b((it|everything)('ll| will| is going to) be (fine|ok|okay|all right|alright)|"
                          r"you('ll| will| are going to) be (fine|ok|okay|all right|alright)|nothing to worry about|"
                          r"(don't|do not) worry|no need to worry|we can cure|(it|this) (is|can be) (cured|curable)|"
                          r"you('ll| will) beat (this|it)|you('ve| have) got (years|ages|plenty of time)|"
                          r"i'm sure it('s| is| will be) (nothing|fine)|try to stay positive|think positive|"
                          r"at least it's not)",),
    "blunt-news": (r"\b(nothing (more )?(to be done|we can do|can be done)|you('re| are) (going to die|dying)|"
                   r"(cancer|it)('s| is) everywhere|you have cancer everywhere|there('s| is) no hope|"
                   r"(it's|it is) terminal|you('ve| have) got (weeks|months) to live|no point (in )?treating|"
                   r"no point (in )?(any )?treatment)",),
    "blaming": (r"\b(because (of )?(you|your) (smok|drink|weight|didn't|did not|left it)|(your|you're) own fault|"
                r"if you (had|'d) (come|stopped|listened|taken)|you should have (come|stopped|taken|listened|told)|"
                r"what did you expect|you brought (this|it) on|that's what (happens|you get) when you|"
                r"you (only )?have yourself to blame)",),
    "dismissing-emotion": (r"\b(calm down|no time for (that|this)|let's not (get )?(emotional|upset|dwell)|"
                           r"there's no (need|point) (to|in) (get|be)(ting)? (upset|emotional|angry|crying)|"
                           r"(pull|get) yourself together|crying (won't|doesn't) help|(getting )?upset won't help|"
                           r"moving on|let's move on|let's get back to|(don't|do not) (be|get) (upset|silly|"
                           r"emotional|dramatic)|(stop|no need for) (crying|being emotional))",),
    "interrupting": (r"\b(let me (just )?stop you|hang on|hold on|wait,|sorry to (cut|interrupt) (you|in)|"
                     r"before you (go on|carry on)|can i just stop you|let me finish)",),
    "check-understanding": (r"\b(can you tell me (back )?what you('ve| have) (understood|taken in)|what have you "
                            r"(understood|taken in)|does (that|this|all that) make sense|is (that|this|all that) clear|"
                            r"(just )?to (check|make sure) (you|i've|that i|i have)|do you (understand|follow)|"
                            r"in your own words|tell me what you('ll| will) (tell|say)|have i explained|does that sound "
                            r"right)",),
    "summarise": (r"\b(to (sum|summari[sz]e)( up)?|so,? to recap|let me (just )?(sum|summari[sz]e|recap)|"
                  r"in summary|so what we('ve| have) (said|agreed|talked about)|just to go over|"
                  r"so,? (the )?(main|key) (things?|points?) (are|is))",),
    "plan": (r"\b(what (happens|we('ll| will) do) next|the next step|next steps|the plan (is|will be)|we('ll| will) "
             r"(arrange|book|refer|start|organise|organize|see you|do|talk|meet|discuss|take|ask|get|make)|"
             r"(i|we)('ll| will) (come back|see you|ring|call|write)|tomorrow (we|you)('ll| will)|"
             r"(we|you) (can|could) (decide|choose|think about) together|options? (are|is|would be))",),
    "safety-net": (r"\b(if (anything|things?) (changes?|gets? worse)|if you('re| are) worried,? (ring|call|come)|"
                   r"(ring|call|contact) (us|the ward|the nurse|this number|me|the team) (if|any ?time)|"
                   r"here is (a|the|my|her) (number|card)|any ?time,? day or night|come back (straight away )?if)",),
    "close": (r"\b(we('ll| will) stop (there|here)|i('ll| will) leave you|thank you for "
              r"(your time|talking|listening)|take care|goodbye|bye for now|i('ll| will) (see|come back to) you "
              r"(later|tomorrow|soon)|see you (later|tomorrow|soon))",),
    "apologise": (r"\b(i('m| am) (so |very |truly |really )?sorry (that|this|we|for|it)|i apologi[sz]e|we apologi[sz]e|"
                  r"please accept (our|my) apolog|we got (this|it) wrong|we made (a|an) (mistake|error)|"
                  r"(it|that) was (our|my) (mistake|fault|error)|this should(n't| not) have happened)",),
    "confidentiality": (r"\b(confidential|between (you and me|us)|(won't|will not|don't|do not) (tell|share|pass) "
                        r"(this |it |anything )?(with |to )?(your )?(parents?|mum|dad|family|anyone)|private|"
                        r"only (if|when) (you|someone) (is|are|were) (at risk|in danger)|i would (have to|need to) "
                        r"(tell|share) .{0,40}(risk|danger|harm|safe))",),
    "risk-question": (r"\b((thoughts?|think(ing)?) (of|about) (ending|taking) your (own )?life|(hurt|harm|kill)(ing)? "
                      r"yourself|suicid|plans? to (end|harm)|(feel|are you) safe (at home|to go home)|"
                      r"(anyone|someone) (hurting|hurt|threaten|frighten)(ing|ed|s)? you|are you safe|"
                      r"(do you have|got) (access to|tablets|pills|a plan)|what stops you)",),
}

# More ways of saying the same moves: everyday clinical phrasings, kept apart so that each table stays legible.
MORE_RULES: dict[str, tuple[str, ...]] = {
    "ask-perception": (r"\b(what (do |did )?you('ve| have)? (already )?(know|knew|understand|understood|been told|heard|"
                       r"make of|think)( so far)? about|tell me what you('ve| have)? (know|understand|understood|been told)|"
                       r"what you('ve| have) been told|what you (understand|understood|know) (so far|about|already)|"
                       r"what (have you been|are you|were you) thinking (it|the|this|that)|what (have|do) you make of|"
                       r"what have you made of)",),
    "ask-invitation": (r"\b(how would you like (me )?to (go through|hear|do) (it|this|that)|some people (like|prefer|want) "
                       r"(to hear|every detail|the main|all the)|would you (rather|prefer))",),
    "naming-emotion": (r"\b((that|it|this) sounds (really |so |very |quite )?(exhausting|awful|hard|difficult|frightening|"
                       r"scary|terrifying|lonely|overwhelming|upsetting|distressing|stressful|like a lot|horrible)|"
                       r"it sounds (as if|as though|like) (you|this|that|coming|things|today|the)|"
                       r"i can (hear|see|tell) (how|that|you)|you('re| are) (clearly |obviously |really |very )?(angry|"
                       r"upset|worried|frightened|scared|furious|shocked|frustrated|exhausted|anxious)\b|"
                       r"you must (be|have been) (so |really |very )?(worried|frightened|exhausted|furious|angry|scared)|"
                       r"this (is|must be|has been) (a )?(real |big |huge |terrible |such a )?(shock|blow))",),
    "understanding-statement": (r"\b((that's|that is|it's|it is) (so |completely |totally )?understandable|"
                                r"i can see why|no wonder|i('d| would) (feel|be) (the same|that way|too)|"
                                r"of course you('re| are| feel| would)|(you have|you've) every right|any (parent|son|"
                                r"daughter|wife|husband|one|body) would|(lots of|many|most) people (would|feel|think)|"
                                r"(an? )?(enormous|huge|great|heavy) (amount of \w+|thing|weight|load) to (carry|deal with|"
                                r"cope with|take in)|a lot to (take in|carry|deal with|cope with))",),
    "respect-statement": (r"\b(takes (real |a lot of )?courage|thank you for (trusting|telling|coming|raising|being|"
                          r"looking after|bringing)|i'm glad you (came|told|mentioned|said|asked)|you did the right "
                          r"thing|(that's|that is|it's) (a )?(really |very )?(fair|good|important|sensible) "
                          r"(question|point)|you('ve| have) (stayed|cared|looked after|done everything)|(those|these) are "
                          r"(really |very )?(good|important|fair|sensible|natural) questions|(it's|that's|it is|that is) "
                          r"not (stupid|silly|daft) at all|(isn't|is not) (stupid|silly|daft)|it was the right thing)",),
    "support-statement": (r"\b(we('ll| will) (think|work|go through|plan|decide|talk|sort) .{0,30}together|"
                          r"(helps|will help|can help) (families|people|you) with|(can|will) (sit|stay|come) with you|"
                          r"i('ll| will) be (here|around|available)|someone (can|will) (come|be|help|sit|stay)|"
                          r"(let's|we'll|we will) (get|make) (you|a plan|sure)|i('ll| will) (see to it|sort|arrange|"
                          r"get (her|him|you|someone)))",),
    "explore-emotion": (r"\b(what (made|makes) (it|that|coming) (so )?(hard|difficult)|what (has|have) kept you going|"
                        r"what('s| has been| is) (been )?the hardest|how (has|have) (your mood|things|you) been|"
                        r"how (have|are) you (been )?(feeling|coping|managing|sleeping)|tell me what you('re| are) "
                        r"(worried|frightened|scared|thinking)|tell me about (that|it|this morning|what)|"
                        r"(is )?(there )?anything (else )?on your mind|what('s| is) on your mind|what (has|have) "
                        r"(stopped|kept|held) you|what goes (round|through))",),
    "open-question": (r"^(go on|tell me\b|i'm listening|please go on|carry on)",),
    "ask-concerns": (r"\b(what (were|are) you hoping|what would you like (to happen|from today|us to|me to)|"
                     r"what('s| is) worrying you|what matters (most )?to you|anything (else )?on your mind)",),
    "check-understanding": (r"\b(what (would|will) make you (come back|call|ring|phone)|can you tell me what you('ll| will| "
                            r"would| understood)|so i know i('ve| have) explained|what will you (do|look out for|tell))",),
    "safety-net": (r"\b(come back (straight away |to see us |sooner )?if|answered day and night|(ring|call|phone) (111|999|us|"
                   r"the surgery|the number|the ward|her|him)|if (it|things|you|the \w+) (gets?|get|feel) worse|"
                   r"whose number you can ring)",),
    "risk-question": (r"\b(ending (your|their|his|her) (own )?life|thoughts (like that|of (suicide|harming|ending))|"
                      r"(thought|think|thinking) about (ending|killing|taking|harming)|(look after|keep|lock (up|away)|"
                      r"take away) the (gun|guns|shotgun|tablets|pills|rope|medication)|are you safe)",),
    "dismissing-emotion": (r"\b(everyone feels (like )?that|cheer up|nothing for you to worry about|(that's|that is|it's) "
                           r"not (really )?(relevant|important|the point)|i (have|need|'ve got) to (get back|go|get on|"
                           r"dash|rush)|i need to get on|anyway,? (let's|moving|back to|as i was saying)|^anyway\b|"
                           r"(that's|it's) not (a medical problem|my problem|my job|our problem)|^next[.!]?$|"
                           r"i have (other|more) patients|you need to stop (shouting|crying))",),
    "false-reassurance": (r"\b(things will (sort|work) (themselves )?out|(it )?won't happen again|all fine now|no harm "
                          r"done|(you'll|you will) be absolutely fine|most people are fine)",),
    "blaming": (r"\b(it's your own fault|(it|this) was (her|his|their|the \w+'s) (error|fault|mistake)|(she|he|they) "
                r"should have (double-checked|checked|known|noticed|called|come)|if (he|she|you|they)('d| had) "
                r"(called|come|rung|phoned|taken|listened|stopped|gone|acted)|(it's|that's|it is) not (our|my) fault|"
                r"(the )?(nurses?|wards?|doctors?|team|they) should have|(that's|it's) an? \w+ (issue|problem),? not "
                r"(mine|ours))",),
    "close": (r"\b(any questions\??$|that's everything|is there anything else (you'd like|i can)|is there anything "
              r"else\??$)",),
    "summarise": (r"^so:", r"\b(so,? just to recap|let me go over)"),
    "plan": (r"\bwill be in touch|(you can|you'll be able to) (see|visit|come|go)|will help (you )?with|"
             r"here's what (i'm|we're) going to do",),
}
for _move, _patterns in MORE_RULES.items():
    RULES[_move] = RULES[_move] + _patterns

# Written examples the embeddings compare a sentence with (a move needs a clear match; rules decide first).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "ask-perception": ("What have you understood so far about why we did the scan?",
                       "What were you thinking the tests might show?"),
    "ask-invitation": ("How much would you like me to tell you about the results?",
                       "Would you like me to go through the details now, or would you rather wait?"),
    "warning-shot": ("I'm afraid the results are not what we were hoping for.",
                     "I'm sorry, but I have some difficult news to share with you."),
    "naming-emotion": ("You look really frightened by what I've just said.", "I can see this has come as a shock."),
    "explore-emotion": ("How are you feeling about all this?", "What is going through your mind right now?"),
    "empathy-statement": ("This must be incredibly hard to hear.", "I'm so sorry, I know this is not what you wanted."),
    "ask-concerns": ("What is worrying you most at the moment?", "Is there anything you are particularly concerned about?"),
    "support-statement": ("We will be with you through this, you won't be on your own.",),
    "check-understanding": ("Can you tell me in your own words what you've understood?",),
    "summarise": ("So, to summarise what we've talked about today.",),
    "plan": ("The next step is a biopsy tomorrow, and then we will meet to talk about treatment.",),
    "false-reassurance": ("Don't worry, everything is going to be absolutely fine.",),
    "dismissing-emotion": ("There's no point getting upset about it, let's move on.",),
}
# all-MiniLM-L6-v2 cosine to the best example of a move. Measured on the 321 clinician sentences of the fixture
# transcripts (tests/data/transcripts): every sentence at >= 0.66 whose best move beat the runner-up by >= 0.15 was
# that move; the first wrong one scored 0.64 ("nothing for you to worry about" as ask-concerns).
EMBEDDING_THRESHOLD = 0.66
EMBEDDING_MARGIN = 0.15

# Words a learner should explain; "explained" when an explanation phrase is in the same turn.
JARGON = ("metastases", "metastasis", "metastatic", "metastasised", "mets", "malignant", "malignancy", "carcinoma",
          "neoplasm", "lesion", "primary", "palliative", "prognosis", "oncology", "oncologist", "histology",
          "bronchoscopy", "cytology", "staging", "mdt", "multidisciplinary", "adenocarcinoma", "lymphoma",
          "sepsis", "myocardial infarction", "mi", "vf", "rosc", "als", "asystole", "arrest", "resus", "bm", "iv",
          "dextrose", "datix", "hypo", "sats", "chemo", "invasive ductal", "analgesia", "delirium", "uti", "pals",
          "anhedonia", "ssri", "urti", "antimicrobial", "adjuvant", "self-limiting", "echo", "echocardiogram",
          "ejection fraction", "furosemide", "diuretic", "lvsd", "infarct", "haemorrhage", "hemorrhage", "dnacpr", "dnr", "cpr",
          "resuscitation", "ventilation", "intubation", "hba1c", "glycaemic", "hypoglycaemia", "titrate", "titration",
          "insulin resistance", "antibiotic resistance", "viral aetiology", "self-limiting", "nephropathy",
          "idiopathic", "cognitive impairment", "neurodegenerative", "anaemia", "transfusion", "foetal", "fetal",
          "non-viable", "gestational sac", "products of conception", "opioid tolerance", "hyperalgesia",
          "inconclusive", "equivocal", "indeterminate", "false positive", "sensitivity", "specificity")
EXPLAINED = re.compile(r"\b(which means|that means|this means|meaning|in other words|in plain (english|words)|"
                       r"what (that|this) means|i\.e\.|that is to say|is a (word|fancy word|medical word|term) for|"
                       r"basically|put simply|simply put|by that i mean|we call|called)\b")

BAD_NEWS = frozenset({"breaking-bad-news", "pregnancy-loss", "dementia-diagnosis", "uncertain-result", "goals-of-care"})
"""Situations where the information is bad news: order is graded (preparation before it, ``blunt-news`` without)."""

STOCK = re.compile(r"^(i('m| am) (so |really |very |truly )?sorry|i understand( how you feel)?|i know how you feel|"
                   r"(that|this) must be (so |really |very )?(hard|difficult|awful|tough)( for you)?|i see|i hear you|"
                   r"i can (imagine|see this is (hard|difficult)( for you)?))[.!]*$")
"""Empathy said in a stock phrase and nothing more: it earns "partly" at best (the grader), never "met"."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_COMPILED = {move: [re.compile(p) for p in patterns] for move, patterns in RULES.items()}
assert set(RULES) <= set(MOVES) and set(EXAMPLES) <= set(MOVES), "moves must come from the schema's MOVES"


def clean(text: str) -> str:
    """Lower-case text with straight apostrophes and single spaces."""
    return " ".join(text.translate(_APOSTROPHES).lower().split())


def sentences(text: str) -> list[str]:
    return [s for s in (clean(p) for p in _SENTENCE.split(text.translate(_APOSTROPHES))) if s]


def contains(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as whole words (both cleaned)."""
    return re.search(rf"(?<![a-z0-9]){re.escape(clean(phrase))}(?![a-z0-9])", text) is not None


@dataclass
class Context:
    """What the recogniser knows beyond the utterance: the turn, what was delivered already, the moves made
    so far, and whether the person's last line carried emotion or a cue."""

    turn: int = 1
    delivered: set[str] = field(default_factory=set)
    earlier_moves: set[str] = field(default_factory=set)
    patient_emotional: bool = False


@dataclass
class Recognised:
    """The moves of one utterance (in MOVES order), with the sentence that showed each, and the information
    items and jargon words found."""

    moves: list[str]
    quotes: dict[str, str]
    delivered: list[str]
    jargon: list[str]
    explained: bool


class MoveRecogniser:
    """Recognises MOVES in a learner's utterance, for one station."""

    def __init__(self, scenario: Scenario, embedder: Embedder | None = None):
        if scenario.conversation is None:
            raise ValueError(f"{scenario.id} is not a conversation station")
        self.scenario = scenario
        self.embedder = embedder if embedder is not None and embedder.available else None
        self.items = scenario.conversation.information
        self.essential = [i.id for i in self.items if i.essential] or [i.id for i in self.items]
        self.bad_news = scenario.conversation.situation in BAD_NEWS
        self._examples = [(move, text) for move, texts in EXAMPLES.items() for text in texts]
        self._plain = {i.id: clean(i.plain) for i in self.items}

    def recognise(self, utterance: str, context: Context | None = None) -> Recognised:
        context = context or Context()
        parts = sentences(utterance)
        whole = clean(utterance)
        found: dict[str, str] = {}
        for sentence in parts or [whole]:
            for move, patterns in _COMPILED.items():
                if move not in found and any(p.search(sentence) for p in patterns):
                    found[move] = sentence
        if not whole.strip(" .") or _COMPILED["silence"][0].search(whole):
            found.setdefault("silence", utterance.strip() or "(silence)")
        covered = {q for m, q in found.items() if m not in ("open-question", "closed-question")}  # form, not content
        for move, sentence in self._embedded([p for p in parts if p not in covered]):
            found.setdefault(move, sentence)
        if "explore-emotion" in found or "ask-concerns" in found:
            found.pop("closed-question", None)
        delivered = self._delivered(whole, parts)
        jargon = [w for w in JARGON if contains(whole, w)]
        explained = bool(EXPLAINED.search(whole))
        if delivered:
            found.setdefault("deliver-information", next(
                (s for s in parts if any(self._mentions(s, i) for i in delivered)), whole))
            prepared = context.earlier_moves & {"warning-shot", "ask-perception", "ask-invitation"} or "warning-shot" in found
            news = [i for i in delivered if i in self.essential and i not in context.delivered]
            first_news = not (context.delivered & set(self.essential))
            if self.bad_news and news and first_news and (not prepared or len(news) >= 3):
                found.setdefault("blunt-news", found["deliver-information"])
        if jargon and not explained:
            found.setdefault("jargon", next((s for s in parts if any(contains(s, w) for w in jargon)), whole))
        elif delivered and (explained or self._plain_words(whole, delivered)):
            found.setdefault("plain-language", found["deliver-information"])
        moves = [m for m in MOVES if m in found]
        original = {clean(raw): " ".join(raw.split()) for raw in _SENTENCE.split(utterance) if raw.strip()}
        original[whole] = " ".join(utterance.split())
        return Recognised(moves=moves, quotes={m: original.get(found[m], found[m]) for m in moves},
                          delivered=delivered, jargon=jargon, explained=explained)

    def _embedded(self, parts: list[str]) -> list[tuple[str, str]]:
        """(move, sentence) for sentences that clearly match a written example of a move (asked only about
        sentences no rule recognised: the rules are precise, the embeddings add paraphrases)."""
        if self.embedder is None or not parts:
            return []
        texts = [t for _, t in self._examples]
        sims = self.embedder.similarity(parts, texts)
        out = []
        for sentence, row in zip(parts, sims):
            best_by_move: dict[str, float] = {}
            for (move, _), value in zip(self._examples, row):
                best_by_move[move] = max(best_by_move.get(move, -1.0), float(value))
            ranked = sorted(best_by_move.items(), key=lambda kv: -kv[1])
            (move, best), runner = ranked[0], ranked[1][1] if len(ranked) > 1 else -1.0
            if best >= EMBEDDING_THRESHOLD and best - runner >= EMBEDDING_MARGIN:
                out.append((move, sentence))
        return out

    def _mentions(self, sentence: str, item_id: str) -> bool:
        item = next(i for i in self.items if i.id == item_id)
        return any(contains(sentence, k) for k in item.keywords)

    def _delivered(self, whole: str, parts: list[str]) -> list[str]:
        """Information items the utterance gets across: one of the item's keywords in a sentence that does not
        ask what the person knows or wants to know, or what they understood."""
        asking = [_COMPILED[m] for m in ("ask-perception", "ask-invitation", "check-understanding")]
        telling = [s for s in parts if not any(p.search(s) for ps in asking for p in ps)]
        return [i.id for i in self.items if any(self._mentions(s, i.id) for s in telling)]

    def _plain_words(self, whole: str, delivered: list[str]) -> bool:
        """Whether the delivery shares words with the items' plain versions (the person can follow it)."""
        words = set(re.findall(r"[a-z]{4,}", whole))
        for item_id in delivered:
            plain = set(re.findall(r"[a-z]{4,}", self._plain[item_id]))
            if len(words & plain) >= 3:
                return True
        return False
