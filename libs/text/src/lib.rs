//! Customers' words, handled the same way by every service that reads them (feedback classifies them, improvement
//! clusters them): lower case with accents and ligatures folded, tokens of letters and digits, and the French and
//! English words that say nothing of a theme.

/// Lower case with accents and ligatures folded (`Reçu` → `recu`, `œuvre` → `oeuvre`).
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => out.push('a'),
            'ç' => out.push('c'),
            'è' | 'é' | 'ê' | 'ë' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' => out.push('i'),
            'ñ' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => out.push('o'),
            'ù' | 'ú' | 'û' | 'ü' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            'ß' => out.push_str("ss"),
            '’' => out.push('\''),
            c => out.push(c),
        }
    }
    out
}

/// The tokens of an already folded text: runs of letters and digits (an apostrophe splits `l'appli`).
pub fn tokens(folded: &str) -> impl Iterator<Item = &str> {
    folded.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty())
}

/// French and English function words (folded): they say nothing of what a complaint is about.
pub const STOP_WORDS: &[&str] = &[
    // English
    "a", "an", "the", "and", "or", "but", "to", "of", "in", "on", "at", "for", "with", "from", "by", "is", "are", "was",
    "were", "be", "been", "it", "its", "this", "that", "my", "me", "we", "our", "you", "your", "they", "them", "he",
    "she", "his", "her", "have", "has", "had", "do", "did", "does", "so", "as", "if", "just", "now", "then", "there",
    "here", "what", "which", "who", "when", "all", "any", "still", "again", "after", "about", "up", "out", "im", "ive",
    "it's", "i'm", "i've", "would", "could", "will", "can", "am", "one", "two", "get", "got", // French
    "le", "la", "les", "un", "une", "des", "du", "de", "et", "ou", "mais", "je", "j", "l", "d", "qu", "que", "qui",
    "il", "elle", "on", "nous", "vous", "ils", "elles", "mon", "ma", "mes", "ton", "ta", "votre", "vos", "notre",
    "nos", "ce", "cet", "cette", "ces", "est", "sont", "suis", "ai", "avez", "avons", "ont", "au", "aux", "en", "dans",
    "par", "pour", "sur", "avec", "sans", "ne", "pas", "plus", "tres", "tout", "toute", "tous", "deja", "se", "sa",
    "son", "ses", "c", "s", "n", "m", "y", "a", "fait", "ete", "etait", "encore", "toujours",
];

/// Whether a folded token is one of [`STOP_WORDS`].
pub fn is_stop_word(token: &str) -> bool {
    STOP_WORDS.contains(&token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_and_splits() {
        assert_eq!(fold("Reçu l’œuvre ÉTÉ"), "recu l'oeuvre ete");
        let f = fold("L'appli a planté… 3 fois!");
        assert_eq!(tokens(&f).collect::<Vec<_>>(), vec!["l", "appli", "a", "plante", "3", "fois"]);
        assert!(is_stop_word("the") && is_stop_word("les") && !is_stop_word("colis"));
    }
}
