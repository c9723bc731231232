//! Where the simulated teams work: countries with their phone numbering, locales, cities and the names of
//! the people their enumerators meet.

use rand::RngExt;
use rand::seq::IndexedRandom;

/// A city, offered as a choice of the forms' `city` question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct City {
    /// The choice value, e.g. `nairobi`.
    pub value: &'static str,
    /// The choice label, e.g. `Nairobi`.
    pub label: &'static str,
    /// Latitude of the centre, degrees.
    pub latitude: f64,
    /// Longitude of the centre, degrees.
    pub longitude: f64,
}

/// A country the platform serves.
#[derive(Debug, PartialEq)]
pub struct Country {
    /// ISO 3166 code, e.g. `KE`.
    pub code: &'static str,
    /// E.164 country calling code, with `+`.
    pub dial: &'static str,
    /// Leading digits of mobile numbers after the calling code.
    pub mobile_prefixes: &'static [&'static str],
    /// Digits that follow the prefix.
    pub subscriber_digits: usize,
    /// BCP 47 locales of respondents' sessions.
    pub locales: &'static [&'static str],
    /// Its cities, the first being the largest.
    pub cities: &'static [City],
    /// Given names.
    pub given_names: &'static [&'static str],
    /// Family names.
    pub family_names: &'static [&'static str],
    /// Currency of the money questions.
    pub currency: &'static str,
    /// A typical monthly household income in that currency.
    pub typical_income: f64,
}

const fn city(value: &'static str, label: &'static str, latitude: f64, longitude: f64) -> City {
    City {
        value,
        label,
        latitude,
        longitude,
    }
}

/// Kenya.
pub static KENYA: Country = Country {
    code: "KE",
    dial: "+254",
    mobile_prefixes: &["70", "71", "72", "74", "79", "11"],
    subscriber_digits: 7,
    locales: &["sw-KE", "en-KE", "sw-KE"],
    cities: &[
        city("nairobi", "Nairobi", -1.2864, 36.8172),
        city("mombasa", "Mombasa", -4.0435, 39.6682),
        city("kisumu", "Kisumu", -0.0917, 34.7680),
        city("nakuru", "Nakuru", -0.3031, 36.0800),
        city("eldoret", "Eldoret", 0.5143, 35.2698),
        city("machakos", "Machakos", -1.5177, 37.2634),
    ],
    given_names: &[
        "Amina",
        "Wanjiru",
        "Achieng",
        "Otieno",
        "Kiprotich",
        "Mwangi",
        "Fatuma",
        "Baraka",
        "Njeri",
        "Chebet",
        "Omondi",
        "Wairimu",
        "Juma",
        "Akinyi",
        "Kamau",
        "Nekesa",
    ],
    family_names: &[
        "Njoroge",
        "Odhiambo",
        "Kibet",
        "Mutua",
        "Hassan",
        "Wekesa",
        "Kariuki",
        "Onyango",
        "Cheruiyot",
        "Mwita",
        "Ochieng",
        "Wambui",
    ],
    currency: "KES",
    typical_income: 18_000.0,
};

/// Nigeria.
pub static NIGERIA: Country = Country {
    code: "NG",
    dial: "+234",
    mobile_prefixes: &["803", "806", "810", "813", "703", "706", "905"],
    subscriber_digits: 7,
    locales: &["en-NG", "yo-NG", "en-NG"],
    cities: &[
        city("lagos", "Lagos", 6.5244, 3.3792),
        city("ibadan", "Ibadan", 7.3775, 3.9470),
        city("abuja", "Abuja", 9.0765, 7.3986),
        city("kano", "Kano", 12.0022, 8.5920),
    ],
    given_names: &[
        "Chinedu",
        "Ngozi",
        "Tunde",
        "Aisha",
        "Emeka",
        "Funmilayo",
        "Ibrahim",
        "Chiamaka",
        "Segun",
        "Zainab",
    ],
    family_names: &[
        "Okafor", "Adeyemi", "Bakare", "Okonkwo", "Balogun", "Eze", "Abubakar", "Nwosu",
    ],
    currency: "NGN",
    typical_income: 95_000.0,
};

/// Ghana.
pub static GHANA: Country = Country {
    code: "GH",
    dial: "+233",
    mobile_prefixes: &["24", "54", "55", "20", "50", "27"],
    subscriber_digits: 7,
    locales: &["en-GH", "ak-GH"],
    cities: &[
        city("accra", "Accra", 5.6037, -0.1870),
        city("kumasi", "Kumasi", 6.6885, -1.6244),
        city("tamale", "Tamale", 9.4008, -0.8393),
        city("takoradi", "Takoradi", 4.8845, -1.7554),
    ],
    given_names: &[
        "Kwame", "Akosua", "Ama", "Kofi", "Abena", "Yaw", "Efua", "Kwabena", "Adwoa", "Kojo",
    ],
    family_names: &[
        "Mensah", "Boateng", "Owusu", "Asante", "Osei", "Agyeman", "Appiah", "Darko",
    ],
    currency: "GHS",
    typical_income: 2_400.0,
};

/// Uganda.
pub static UGANDA: Country = Country {
    code: "UG",
    dial: "+256",
    mobile_prefixes: &["77", "78", "70", "75", "76"],
    subscriber_digits: 7,
    locales: &["en-UG", "lg-UG"],
    cities: &[
        city("kampala", "Kampala", 0.3476, 32.5825),
        city("gulu", "Gulu", 2.7724, 32.2881),
        city("mbarara", "Mbarara", -0.6072, 30.6545),
    ],
    given_names: &[
        "Nakato",
        "Okello",
        "Apio",
        "Mukasa",
        "Namubiru",
        "Ssemwanga",
        "Auma",
        "Kato",
    ],
    family_names: &["Nsubuga", "Ochola", "Namutebi", "Kigozi", "Atim", "Lubega"],
    currency: "UGX",
    typical_income: 450_000.0,
};

/// Tanzania.
pub static TANZANIA: Country = Country {
    code: "TZ",
    dial: "+255",
    mobile_prefixes: &["74", "75", "76", "65", "71"],
    subscriber_digits: 7,
    locales: &["sw-TZ", "en-TZ"],
    cities: &[
        city("dar-es-salaam", "Dar es Salaam", -6.7924, 39.2083),
        city("arusha", "Arusha", -3.3869, 36.6830),
        city("mwanza", "Mwanza", -2.5164, 32.9175),
    ],
    given_names: &[
        "Neema", "Rehema", "Hamisi", "Zawadi", "Saidi", "Upendo", "Bakari", "Mwajuma",
    ],
    family_names: &["Mushi", "Massawe", "Kimaro", "Mrema", "Said", "Lyimo"],
    currency: "TZS",
    typical_income: 420_000.0,
};

/// Every country, Kenya first (most demo teams work there).
pub static COUNTRIES: [&Country; 5] = [&KENYA, &NIGERIA, &GHANA, &UGANDA, &TANZANIA];

/// Every city of every country.
pub fn all_cities() -> impl Iterator<Item = &'static City> {
    COUNTRIES.iter().flat_map(|c| c.cities.iter())
}

/// The country a city value belongs to.
pub fn country_of_city(value: &str) -> Option<&'static Country> {
    COUNTRIES
        .iter()
        .copied()
        .find(|c| c.cities.iter().any(|city| city.value == value))
}

impl Country {
    /// A mobile number in E.164, e.g. `+254712345678`.
    pub fn phone<R: rand::Rng>(&self, rng: &mut R) -> String {
        let prefix = self.mobile_prefixes.choose(rng).copied().unwrap_or_default();
        let mut number = String::with_capacity(16);
        number.push_str(self.dial);
        number.push_str(prefix);
        for _ in 0..self.subscriber_digits {
            number.push(char::from(b'0' + rng.random_range(0..10u8)));
        }
        number
    }

    /// A person's full name.
    pub fn person<R: rand::Rng>(&self, rng: &mut R) -> String {
        let given = self.given_names.choose(rng).copied().unwrap_or("Amina");
        let family = self.family_names.choose(rng).copied().unwrap_or("Njoroge");
        format!("{given} {family}")
    }

    /// A respondent's locale.
    pub fn locale<R: rand::Rng>(&self, rng: &mut R) -> &'static str {
        self.locales.choose(rng).copied().unwrap_or("en")
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    use super::*;

    #[test]
    fn phones_are_e164() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for country in COUNTRIES {
            for _ in 0..50 {
                let phone = country.phone(&mut rng);
                assert!(phone.starts_with(country.dial), "{phone}");
                assert!(phone[1..].bytes().all(|b| b.is_ascii_digit()), "{phone}");
                // E.164: at most 15 digits after the plus.
                assert!((11..=15).contains(&(phone.len() - 1)), "{phone}");
            }
        }
        assert!(KENYA.phone(&mut rng).starts_with("+2547") || KENYA.phone(&mut rng).starts_with("+2541"));
    }

    #[test]
    fn city_values_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for city in all_cities() {
            assert!(seen.insert(city.value), "{}", city.value);
            assert_eq!(
                country_of_city(city.value).map(|c| c.cities.contains(city)),
                Some(true)
            );
        }
    }
}
