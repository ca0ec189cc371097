//! What a pipeline file parse reports: each error with its file, line, column,
//! the definition path when one is known, and what is wrong.

use std::fmt;

/// One thing wrong with a pipeline file, pointed at a place in it.
///
/// Displays as
/// `pipeline.yaml:12:7: stages[1].requested_freight[0].sources.stages[0]: no stage "qa"`
/// (the path is left out when the error is not about one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineFileError {
    /// The name the file was given to the parser (usually its path).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The definition path of the offending value, e.g. `stages[2].policy.gates`.
    pub path: Option<String>,
    pub message: String,
}

impl fmt::Display for PipelineFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PipelineFileError {}

/// Every error found in one pipeline file, in the order of the file; never empty.
///
/// A file that is not readable YAML yields one error; one of the wrong shape
/// an error per part that does not read, as far as they can be told apart
/// (see `recover`); a definition that breaks several rules one error per
/// problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineFileErrors(pub Vec<PipelineFileError>);

impl PipelineFileErrors {
    /// A list holding just `error`.
    pub fn one(error: PipelineFileError) -> Self {
        PipelineFileErrors(vec![error])
    }

    pub fn iter(&self) -> std::slice::Iter<'_, PipelineFileError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for PipelineFileErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PipelineFileErrors {}

impl IntoIterator for PipelineFileErrors {
    type Item = PipelineFileError;
    type IntoIter = std::vec::IntoIter<PipelineFileError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a PipelineFileErrors {
    type Item = &'a PipelineFileError;
    type IntoIter = std::slice::Iter<'a, PipelineFileError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize, path: Option<&str>, message: &str) -> PipelineFileError {
        PipelineFileError {
            file: "pipeline.yaml".into(),
            line,
            column: 7,
            path: path.map(str::to_string),
            message: message.into(),
        }
    }

    #[test]
    fn displays_file_line_column_path_and_message() {
        let e = error(
            12,
            Some("stages[1].requested_freight[0].sources.stages[0]"),
            "no stage \"qa\"",
        );
        assert_eq!(
            e.to_string(),
            "pipeline.yaml:12:7: stages[1].requested_freight[0].sources.stages[0]: no stage \"qa\""
        );
        assert_eq!(error(3, None, "bad").to_string(), "pipeline.yaml:3:7: bad");
    }

    #[test]
    fn a_list_displays_one_error_per_line() {
        let all = PipelineFileErrors(vec![error(1, None, "a"), error(2, Some("project"), "b")]);
        assert_eq!(
            all.to_string(),
            "pipeline.yaml:1:7: a\npipeline.yaml:2:7: project: b"
        );
        assert_eq!(all.len(), 2);
    }
}
