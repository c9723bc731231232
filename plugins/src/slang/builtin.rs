//! The built-in dictionaries: Sheng for East African cities, Pidgin for West African ones.
//!
//! The cities are the choice values of the demo's `city` question (the load generator's countries).
//! Sheng is Nairobi's street slang, but it is heard across Kenya and beyond, and the demo's generator
//! writes Sheng comments for every Kenyan, Ugandan and Tanzanian city, so all of them get the Sheng
//! dictionary. Nigeria and Ghana get one West African Pidgin dictionary: the two Pidgins share most
//! words (`abeg`, `wahala`, `dey`), and it also holds the Ghanaian `chale` and the Nigerian `oga` the
//! generator uses in both countries.
//!
//! Every term is a whole-word pattern. Words that are also common English words (`chop`, `dash`,
//! `gist`, `am`) are left out, or only included inside a phrase (`for am`), so that plain English
//! comments in those cities do not produce hits.

use super::Dictionaries;

/// Cities whose respondents the built-in Sheng dictionary is for (Kenya, Uganda, Tanzania).
pub const SHENG_CITIES: [&str; 12] = [
    "nairobi",
    "mombasa",
    "kisumu",
    "nakuru",
    "eldoret",
    "machakos",
    "kampala",
    "gulu",
    "mbarara",
    "dar-es-salaam",
    "arusha",
    "mwanza",
];

/// Cities whose respondents the built-in Pidgin dictionary is for (Nigeria, Ghana).
pub const PIDGIN_CITIES: [&str; 8] = [
    "lagos", "ibadan", "abuja", "kano", "accra", "kumasi", "tamale", "takoradi",
];

/// Sheng terms and their standard meanings. The first ten are the words the demo's generator puts into
/// free text.
const SHENG: [(&str, &str); 33] = [
    ("mambo", "hi, how are things"),
    ("poa", "cool, fine"),
    ("fiti", "fine, good"),
    ("msee", "guy, person"),
    ("doh", "money"),
    ("sasa", "hi, what's up; also: now"),
    ("manze", "man! (exclamation)"),
    ("keja", "house, home"),
    ("ganji", "money"),
    ("mat", "matatu (minibus taxi)"),
    ("poa sana", "very well, great"),
    ("ako na", "has"),
    ("mse", "guy, person"),
    ("maze", "man! (exclamation)"),
    ("doo", "money"),
    ("chapaa", "money"),
    ("niaje", "hi, how are you"),
    ("vipi", "how is it going"),
    ("beshte", "friend"),
    ("dem", "girl, girlfriend"),
    ("mresh", "girl, young woman"),
    ("buda", "father, old man"),
    ("mathe", "mother"),
    ("mzae", "parent, old man"),
    ("mtoi", "child"),
    ("mbogi", "crew, gang"),
    ("ndai", "car"),
    ("nduthi", "motorbike"),
    ("rada", "the plan, what is happening"),
    ("ngori", "trouble, difficulty"),
    ("fala", "fool"),
    ("karao", "police officer"),
    ("sonko", "rich person"),
];

/// West African Pidgin terms and their standard meanings.
const PIDGIN: [(&str, &str); 24] = [
    ("abeg", "please"),
    ("wahala", "trouble, problem"),
    ("no wahala", "no problem"),
    ("dey", "is, are (ongoing)"),
    ("chale", "friend, mate"),
    ("charley", "friend, mate"),
    ("wetin", "what"),
    ("oga", "boss, sir"),
    ("don spoil", "is broken"),
    ("make we", "let us"),
    ("e be like say", "it seems that"),
    ("for am", "for him, her or it"),
    ("e don do", "that is enough"),
    ("sabi", "know, be skilled at"),
    ("pikin", "child"),
    ("abi", "right? isn't it?"),
    ("una", "you (plural)"),
    ("comot", "leave, go out"),
    ("waka", "walk, go"),
    ("wey", "who, which, that"),
    ("sef", "even, anyway"),
    ("na wa", "wow (surprise or dismay)"),
    ("small small", "little by little"),
    ("japa", "emigrate, run away"),
];

/// The built-in dictionaries: [`SHENG_CITIES`] with Sheng, [`PIDGIN_CITIES`] with West African Pidgin.
pub fn builtin() -> Dictionaries {
    let mut dictionaries = Dictionaries::new();
    for (cities, terms) in [(&SHENG_CITIES[..], &SHENG[..]), (&PIDGIN_CITIES[..], &PIDGIN[..])] {
        for city in cities {
            for (term, meaning) in terms {
                dictionaries.insert_builtin(city, term, meaning);
            }
        }
    }
    dictionaries
}
